//! Discovery (RFC 8414 / OpenID Connect Discovery field names) and the JWKS.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::oidc::STANDARD_SCOPES;
use gatehouse_core::tokens::api_scopes::API_SCOPES;
use gatehouse_core::tokens::id_token::{ACR_MFA, ACR_PASSWORD};
use gatehouse_core::tokens::keys::SigningAlgorithm;
use serde_json::json;

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(jwks).service(openid_configuration);
}

/// The published signing keys. Caches may keep them for the publish-ahead window: a key
/// is published that long before it signs anything.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "discovery",
    responses((status = 200, description = "The published signing keys", body = crate::openapi::bodies::Jwks)),
)]
#[get("/.well-known/jwks.json")]
async fn jwks(gatehouse: web::Data<Gatehouse>) -> Result<HttpResponse, ApiError> {
    let keys = gatehouse.access_tokens().keys();
    let max_age = keys.jwks_max_age().as_secs();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .json(keys.jwks().await?))
}

#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "discovery",
    responses((status = 200, description = "The OpenID Provider metadata", body = crate::openapi::bodies::Discovery)),
)]
#[get("/.well-known/openid-configuration")]
async fn openid_configuration(gatehouse: web::Data<Gatehouse>) -> Result<HttpResponse, ApiError> {
    let mut scopes: Vec<String> = STANDARD_SCOPES
        .iter()
        .chain(API_SCOPES.iter())
        .map(|(s, _)| (*s).to_owned())
        .collect();
    for scope in gatehouse.registered_scopes().await? {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(discovery_document(gatehouse.issuer(), &scopes)))
}

/// The OpenID Provider metadata (OpenID Connect Discovery 1.0, RFC 8414).
fn discovery_document(issuer: &str, scopes: &[String]) -> serde_json::Value {
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "id_token_signing_alg_values_supported": SigningAlgorithm::ALL.map(SigningAlgorithm::as_str),
        "scopes_supported": scopes,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash",
            "amr", "acr", "email", "email_verified", "name"
        ],
        "acr_values_supported": [ACR_PASSWORD, ACR_MFA],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "revocation_feed_endpoint": format!("{issuer}/api/v1/revocations"),
    })
}
