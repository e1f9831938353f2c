//! The revocation feed: one row per revoked session, kept while tokens of the session
//! can still be valid.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_revocations")]
pub struct Model {
    /// Position in the feed.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub session_id: Uuid,
    pub revoked_at: DateTimeUtc,
    /// Unix time after which no access token of the session is valid anyway.
    pub tokens_expire_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
