//! One authenticated login of one user. Everything that proves the login points here.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    /// Absolute end of the session, whatever its activity.
    pub expires_at: DateTimeUtc,
    /// Expiry of the last access token issued for the session.
    pub last_token_expires_at: DateTimeUtc,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_reason: Option<String>,
    /// The browser login an app session was issued under; none for a login itself.
    pub parent_id: Option<Uuid>,
    /// The client an app session belongs to.
    pub client_id: Option<String>,
    /// When the user authenticated, for an app session (a login's is `created_at`).
    pub auth_time: Option<DateTimeUtc>,
    /// How the user authenticated: space-separated RFC 8176 values (`pwd`, `otp`, `mfa`);
    /// none for sessions opened before it was recorded (a password).
    pub amr: Option<String>,
    /// When the user last proved themselves again in this session (step-up).
    pub reauthenticated_at: Option<DateTimeUtc>,
    /// The admin who opened this session as the user (impersonation); it can never
    /// change credentials.
    pub impersonator_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    #[sea_orm(has_many = "super::refresh_tokens::Entity")]
    RefreshTokens,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::refresh_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshTokens.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
