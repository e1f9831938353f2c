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
    /// Registered post-logout redirect URIs, space-separated.
    pub post_logout_redirect_uris: String,
    /// Where OpenID Connect back-channel logout tokens are posted.
    pub backchannel_logout_uri: Option<String>,
    /// Issue a refresh token on every code exchange, not only with `offline_access`.
    pub always_issue_refresh_token: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
