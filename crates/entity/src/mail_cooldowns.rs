//! When a mail of one kind last went to one address: no second one within
//! `tokens.mail_cooldown`, however often it is asked for.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_cooldowns")]
pub struct Model {
    /// Hex HMAC-SHA256 (under a key derived from the master key) of
    /// `<purpose>:<normalised address>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_hash: String,
    pub last_sent_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
