//! An account: one person who can log in.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Normalised address (see `gatehouse_core::Email`); unique.
    #[sea_orm(unique)]
    pub email: String,
    pub name: Option<String>,
    /// A PHC string: argon2id, or bcrypt for imported users until their next login.
    pub password_hash: String,
    /// `user` or `admin`.
    pub role: String,
    pub email_verified_at: Option<DateTimeUtc>,
    pub disabled_at: Option<DateTimeUtc>,
    /// When the account's TOTP credential was confirmed; none while MFA is off.
    pub mfa_enabled_at: Option<DateTimeUtc>,
    /// When an admin banned the account; set while a ban is stored, cleared when lifted.
    pub banned_at: Option<DateTimeUtc>,
    /// When the ban ends; `None` with `banned_at` set: for good. A ban holds while this
    /// is in the future.
    pub banned_until: Option<DateTimeUtc>,
    /// The admin's reason for the ban (1 to 500 characters).
    pub ban_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::sessions::Entity")]
    Sessions,
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sessions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
