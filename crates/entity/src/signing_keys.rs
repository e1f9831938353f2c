//! A key that signs access tokens. The private part is encrypted under the master key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// RFC 7638 thumbprint of the public key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// JWS algorithm name, e.g. `EdDSA`.
    pub algorithm: String,
    pub public_key: Vec<u8>,
    /// AES-256-GCM nonce followed by the sealed PKCS#8 document.
    pub private_key_encrypted: Vec<u8>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
