//! One mail the server promised to send, with its delivery state.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The address the mail goes to.
    pub recipient: String,
    /// Which mail it is (`verify_email`, `reset_password`, ...).
    pub kind: String,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    /// The `Message-ID` header, the same on every attempt.
    pub message_id: String,
    /// The rendered message, sealed under a key derived from the master key (the row's id
    /// is the associated data); `None` once sent.
    pub sealed_message: Option<Vec<u8>>,
    /// Attempts started (a claim counts as one).
    pub attempts: i32,
    /// When a pending mail is due (or, while claimed, when the claim's lease ends).
    pub next_attempt_at: Option<DateTimeUtc>,
    /// The current claim; only its holder records the outcome.
    pub claim_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_attempt_at: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
