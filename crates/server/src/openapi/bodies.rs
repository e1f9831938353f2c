//! The bodies the handlers build with `json!`, described for the document; they are
//! never constructed. The handlers' annotations name them, so this file depends on no
//! route.
#![allow(dead_code)]

use gatehouse_core::oauth::clients::GrantType;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// A sentence for humans.
#[derive(ToSchema)]
pub struct Message {
    pub message: String,
}

/// The address is verified.
#[derive(ToSchema)]
pub struct EmailVerified {
    pub email_verified: bool,
}

/// How many sessions were ended.
#[derive(ToSchema)]
pub struct RevokedCount {
    pub revoked: u64,
}

/// A probe's answer: `ok` or `ready`.
#[derive(ToSchema)]
pub struct Status {
    pub status: String,
}

/// An OpenAPI document.
#[derive(ToSchema)]
pub struct OpenApiDocument {
    pub openapi: String,
    pub info: serde_json::Value,
    pub paths: serde_json::Value,
}

/// The token endpoint's form. Client authentication: HTTP Basic, or `client_id` and
/// `client_secret` here (`client_secret_post`), or `client_id` alone for a public
/// client.
#[derive(ToSchema)]
pub struct TokenForm {
    pub grant_type: GrantType,
    /// `authorization_code`: the code.
    pub code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier.
    pub code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    pub refresh_token: Option<String>,
    /// `client_credentials`: the scopes asked for, space-separated.
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The introspection form (RFC 7662); a confidential client authenticates.
#[derive(ToSchema)]
pub struct IntrospectForm {
    pub token: String,
    /// `access_token` or `refresh_token`: where to look first.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The revocation form (RFC 7009).
#[derive(ToSchema)]
pub struct RevokeForm {
    pub token: String,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 7662: `{"active": false}`, or `true` with the token's claims.
#[derive(ToSchema)]
pub struct Introspection {
    pub active: bool,
    pub token_type: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub scope: Option<String>,
    pub aud: Option<serde_json::Value>,
    pub iss: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
}

/// The claims about the user the token's scopes allow (`email` with `email`,
/// `name` with `profile`).
#[derive(ToSchema)]
pub struct UserInfo {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub name: Option<String>,
}

/// A JSON Web Key Set (RFC 7517).
#[derive(ToSchema)]
pub struct Jwks {
    pub keys: Vec<serde_json::Value>,
}

/// The OpenID Provider metadata; the discovery section of docs/http-api.md lists
/// every field.
#[derive(ToSchema)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: String,
    pub response_types_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
}

/// The token endpoint's answer: a token pair (refresh grant), a service token (client
/// credentials) or code-flow tokens (authorization code). Any of, not one of: a service
/// token with a scope also has the shape of code-flow tokens without a refresh token.
pub struct TokenResponse;

impl PartialSchema for TokenResponse {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("TokenPair"))
            .item(utoipa::openapi::Ref::from_schema_name("ServiceToken"))
            .item(utoipa::openapi::Ref::from_schema_name("CodeTokens"))
            .into()
    }
}

impl ToSchema for TokenResponse {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use gatehouse_core::oidc::CodeTokens;
        use gatehouse_core::{ServiceToken, TokenPair};
        schemas.push((TokenPair::name().into(), TokenPair::schema()));
        schemas.push((ServiceToken::name().into(), ServiceToken::schema()));
        schemas.push((CodeTokens::name().into(), CodeTokens::schema()));
        <TokenPair as ToSchema>::schemas(schemas);
    }
}
