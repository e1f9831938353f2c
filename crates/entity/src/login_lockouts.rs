//! The last lock of one login address: while `locked_until` is ahead, clients without a
//! trusted device token of the account are refused; failures from before it no longer
//! count once it has passed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_lockouts")]
pub struct Model {
    /// Hex HMAC-SHA256 (under a key derived from the master key) of
    /// `login_email:<normalised address>`, the key of the address's failure counter.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_hash: String,
    pub locked_at: DateTimeUtc,
    /// The end of the lock; ended early (set to the moment) by a password reset or an admin.
    pub locked_until: DateTimeUtc,
    /// The failures that caused the lock.
    pub failures: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
