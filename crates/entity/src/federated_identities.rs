//! An account's identity at an upstream provider (`[[federation.providers]]`): signing
//! in there signs in to the account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "federated_identities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The provider's `id` in the configuration.
    pub provider_id: String,
    /// The provider's stable identifier of its user (`sub`, or GitHub's numeric id).
    pub subject: String,
    /// The address the provider gave when the identity was linked, for the account page.
    pub email: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
