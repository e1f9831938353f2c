//! An OAuth client: an app or service that obtains tokens.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    /// The public `client_id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// `public` or `confidential`.
    pub client_type: String,
    /// Hex SHA-256 of the secret of a confidential client.
    pub secret_hash: Option<String>,
    /// Allowed grant types, space-separated.
    pub grant_types: String,
    /// Allowed scopes, space-separated.
    pub scopes: String,
    /// The `aud` of tokens issued to the client; the default audience when absent.
    pub audience: Option<String>,
    /// Registered redirect URIs, space-separated.
    pub redirect_uris: String,
    /// Trusted first-party app (no consent screen).
    pub first_party: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
