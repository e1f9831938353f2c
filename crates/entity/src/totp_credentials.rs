//! An account's authenticator-app (TOTP) credential: pending until a first code confirms it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The shared secret, sealed with AES-256-GCM under a key derived from the master key.
    pub secret_sealed: Vec<u8>,
    pub created_at: DateTimeUtc,
    /// When a first code confirmed the enrolment; none while it is pending.
    pub confirmed_at: Option<DateTimeUtc>,
    /// The last time step whose code was accepted: a code is never accepted twice.
    pub last_used_step: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
