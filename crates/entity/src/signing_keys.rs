//! A key that signs access tokens. The private part is encrypted under the master key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// RFC 7638 thumbprint of the public key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// 1 for the first key, one more for each rotation; unique, so two instances
    /// rotating at once cannot both add a key.
    #[sea_orm(unique)]
    pub generation: i64,
    /// JWS algorithm name: `RS256`, `ES256` or `EdDSA`.
    pub algorithm: String,
    /// The public key as a JWK (JSON), as published.
    pub public_jwk: String,
    /// AES-256-GCM nonce followed by the sealed PKCS#8 document.
    pub private_key_encrypted: Vec<u8>,
    pub created_at: DateTimeUtc,
    /// When the key starts signing; until then it is only published.
    pub activates_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
