//! The state behind the session cookie of the hosted pages. Once the user logs in it
//! points at their session, and ends with it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "browser_sessions")]
pub struct Model {
    /// Hex SHA-256 of the cookie's session key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The login session, once the user has logged in.
    pub session_id: Option<Uuid>,
    /// The session state: a JSON object of strings.
    pub state: String,
    pub created_at: DateTimeUtc,
    /// Idle expiry; moved forward on activity.
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
