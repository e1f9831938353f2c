//! Discovery (RFC 8414 / OpenID Connect Discovery field names) and the JWKS.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::keys::SigningAlgorithm;
use serde_json::json;

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(jwks).service(openid_configuration);
}

/// The published signing keys. Caches may keep them for the publish-ahead window: a key
/// is published that long before it signs anything.
#[get("/.well-known/jwks.json")]
async fn jwks(gatehouse: web::Data<Gatehouse>) -> Result<HttpResponse, ApiError> {
    let keys = gatehouse.access_tokens().keys();
    let max_age = keys.jwks_max_age().as_secs();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .json(keys.jwks().await?))
}

#[get("/.well-known/openid-configuration")]
async fn openid_configuration(gatehouse: web::Data<Gatehouse>) -> Result<HttpResponse, ApiError> {
    let issuer = gatehouse.issuer();
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "token_endpoint": format!("{issuer}/oauth2/token"),
            "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
            "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
            "grant_types_supported": ["client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "id_token_signing_alg_values_supported": SigningAlgorithm::ALL.map(SigningAlgorithm::as_str),
            "scopes_supported": gatehouse.registered_scopes().await?,
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "sid", "scope", "role"
            ],
            "revocation_feed_endpoint": format!("{issuer}/api/v1/revocations"),
        })))
}
