//! One-time tokens: email verification, password reset, email change, the second step
//! of a login and the link that opens an impersonation in a browser. Only the SHA-256 of
//! the token is stored.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "one_time_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// `verify_email`, `reset_password`, `change_email`, `undo_email_change`, `mfa_login`,
    /// `mfa_login_federated` or `impersonation`.
    pub purpose: String,
    /// Hex SHA-256 of the token.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    /// The address a `change_email` token confirms, or the one an `undo_email_change`
    /// token restores; `None` for other purposes.
    pub email: Option<String>,
    /// The impersonated session an `impersonation` token opens in a browser; `None` for
    /// other purposes.
    pub session_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
