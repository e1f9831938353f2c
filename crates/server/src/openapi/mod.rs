//! The OpenAPI 3.1 document of every JSON endpoint, generated from the handlers'
//! `#[utoipa::path]` annotations and the request and response types, and served at
//! `GET /api/v1/openapi.json`.
//!
//! The error responses are not written by hand on each handler: [`document`] adds them
//! to every operation from what the operation takes (a JSON or form body, query or path
//! parameters, a Bearer token or client credentials) and from [`endpoint_errors`], the
//! domain errors each endpoint may answer. The status and the code of each come from
//! the one table in [`crate::error`], so the document cannot disagree with it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, get, web};
use gatehouse_core::Error as CoreError;
use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ApiError, OAuthError};
use crate::routes::{admin, api, health, oauth2, revocations, well_known};

pub mod bodies;

/// The generated part of the document: paths, schemas, security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "The JSON API of Gatehouse: accounts, sessions, administration, and the \
                       OAuth 2.0 / OpenID Connect endpoints. Errors of the JSON API are \
                       `{\"error\": code, \"message\": sentence}`; errors of the OAuth \
                       endpoints are RFC 6749 `{\"error\", \"error_description\"}`. Each \
                       error response lists the stable codes it may carry.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::healthz,
        health::readyz,
        well_known::jwks,
        well_known::openid_configuration,
        oauth2::token,
        oauth2::introspect,
        oauth2::revoke,
        oauth2::userinfo,
        revocations::revocations,
        openapi_json,
        api::signup,
        api::verify_email,
        api::resend_verification,
        api::login,
        api::login_second_factor,
        api::reauthenticate,
        api::start_totp,
        api::confirm_totp,
        api::remove_totp,
        api::list_identities,
        api::unlink_identity,
        api::regenerate_recovery_codes,
        api::refresh,
        api::logout,
        api::me,
        api::delete_me,
        api::request_email_change,
        api::confirm_email_change,
        api::undo_email_change,
        api::list_sessions,
        api::revoke_session,
        api::forgot_password,
        api::reset_password,
        api::change_password,
        admin::list_users,
        admin::get_user,
        admin::update_user,
        admin::clear_login_lock,
        admin::ban_user,
        admin::unban_user,
        admin::remove_user_mfa,
        admin::user_sessions,
        admin::revoke_user_sessions,
        admin::impersonate,
        admin::revoke_session,
        admin::audit,
        admin::create_client,
        admin::list_clients,
        admin::get_client,
        admin::update_client,
        admin::delete_client,
        admin::rotate_client_secret,
        admin::list_mail,
        admin::retry_mail,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::OAuthErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "account", description = "Sign-up, login, tokens, sessions and passwords of end users"),
        (name = "admin", description = "Accounts, sessions, clients and the audit log; an admin's token with `gatehouse:admin`"),
        (name = "oauth2", description = "OAuth 2.0 and OpenID Connect endpoints for apps, and the revocation feed"),
        (name = "discovery", description = "Discovery document and signing keys"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "This document"),
    ),
)]
struct ApiDoc;

/// `bearer`: an access token of Gatehouse's API; `client_basic`: a client's id and
/// secret by HTTP Basic (`client_secret_basic`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// Registers `GET /openapi.json` (inside `/api/v1`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi_json);
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This OpenAPI 3.1 document", body = OpenApiDocument)),
)]
#[get("/openapi.json")]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The whole document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    let mut seen_ids = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if !HTTP_METHODS.contains(&method.as_str()) {
                    continue;
                }
                operation["x-method"] = json!(method);
                add_error_responses(path, operation);
                if let Some(operation) = operation.as_object_mut() {
                    operation.remove("x-method");
                }
                unique_operation_id(method, operation, &mut seen_ids);
            }
        }
    }
    doc
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `method(get, post)` gives both operations the handler's name: the second gets
/// `_post` appended (operation ids must be unique).
fn unique_operation_id(method: &str, operation: &mut Value, seen: &mut Vec<String>) {
    let Some(id) = operation
        .get("operationId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    if seen.contains(&id) {
        let unique = format!("{id}_{method}");
        operation["operationId"] = json!(unique);
        seen.push(unique);
    } else {
        seen.push(id);
    }
}

/// An error one operation may answer, in the rendering of its endpoint.
enum Documented {
    Api(ApiError),
    OAuth(OAuthError),
}

impl Documented {
    fn status(&self) -> StatusCode {
        match self {
            Documented::Api(e) => e.status_code(),
            Documented::OAuth(e) => e.status_code(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Documented::Api(e) => e.code(),
            Documented::OAuth(e) => e.code(),
        }
    }

    fn schema_name(&self) -> &'static str {
        match self {
            Documented::Api(_) => "ApiErrorBody",
            Documented::OAuth(_) => "OAuthErrorBody",
        }
    }
}

/// Whether an endpoint answers its errors in RFC 6749 form (the OAuth endpoints that
/// authenticate clients, and the revocation feed).
fn renders_oauth_errors(path: &str) -> bool {
    (path.starts_with("/oauth2/") && path != "/oauth2/userinfo") || path == "/api/v1/revocations"
}

fn invalid(code: &'static str) -> CoreError {
    CoreError::InvalidInput {
        code,
        message: String::new(),
    }
}

fn conflict(code: &'static str) -> CoreError {
    CoreError::Conflict {
        code,
        message: String::new(),
    }
}

fn wait() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}

/// The domain errors of each endpoint beyond those that follow from what it takes (see
/// `add_error_responses`), by operation id. `None`: an operation this table does not
/// know (a test fails on it).
pub fn endpoint_errors(operation_id: &str) -> Option<Vec<CoreError>> {
    use CoreError as E;
    let not_found = || E::NotFound("resource");
    let overloaded = || E::Overloaded {
        retry_after: wait(),
    };
    let password = || [invalid("password_too_short"), invalid("password_too_long")];
    // A sensitive action without a recent authentication (step-up).
    let fresh = || E::ReauthenticationRequired;
    Some(match operation_id {
        "healthz" | "openapi_json" | "jwks" | "openid_configuration" | "readyz" => vec![],
        "signup" => {
            let mut errors = vec![invalid("invalid_email"), invalid("invalid_name")];
            errors.extend(password());
            errors.push(overloaded());
            errors
        }
        "verify_email" => vec![E::InvalidOneTimeToken],
        "resend_verification" | "forgot_password" => vec![invalid("invalid_email")],
        "login" => vec![
            invalid("invalid_email"),
            invalid("password_too_long"),
            E::InvalidCredentials,
            E::EmailNotVerified,
            E::AccountDisabled,
            E::AccountBanned { until: None },
            E::TooManyAttempts {
                retry_after: wait(),
            },
            overloaded(),
        ],
        "login_second_factor" => vec![
            E::InvalidOneTimeToken,
            E::InvalidMfaCode,
            E::EmailNotVerified,
            E::AccountDisabled,
            E::TooManyAttempts {
                retry_after: wait(),
            },
        ],
        "reauthenticate" => {
            let mut errors = vec![
                invalid("password_too_long"),
                invalid("no_password"),
                E::InvalidCurrentPassword,
            ];
            errors.extend([
                E::MfaCodeRequired,
                E::InvalidMfaCode,
                E::ImpersonatedSession,
            ]);
            errors.push(E::TooManyAttempts {
                retry_after: wait(),
            });
            errors.push(overloaded());
            errors
        }
        "start_totp" => vec![
            fresh(),
            E::ImpersonatedSession,
            conflict("mfa_already_enabled"),
        ],
        "confirm_totp" => vec![
            fresh(),
            E::ImpersonatedSession,
            E::InvalidMfaCode,
            conflict("mfa_already_enabled"),
            conflict("mfa_enrolment_not_started"),
        ],
        "remove_totp" | "regenerate_recovery_codes" => {
            vec![fresh(), E::ImpersonatedSession, conflict("mfa_not_enabled")]
        }
        "refresh" => vec![E::InvalidRefreshToken],
        "logout" | "me" | "list_sessions" | "list_identities" => vec![],
        "unlink_identity" => vec![
            not_found(),
            fresh(),
            E::ImpersonatedSession,
            conflict("last_sign_in_method"),
        ],
        "delete_me" => vec![
            conflict("admin_cannot_be_deleted"),
            fresh(),
            E::ImpersonatedSession,
        ],
        "request_email_change" => vec![
            invalid("invalid_email"),
            invalid("email_unchanged"),
            fresh(),
            E::ImpersonatedSession,
        ],
        "confirm_email_change" => vec![E::InvalidOneTimeToken, conflict("email_taken")],
        "undo_email_change" => vec![E::InvalidOneTimeToken, conflict("email_taken")],
        "revoke_session" => vec![not_found()],
        "reset_password" => {
            let mut errors = Vec::from(password());
            errors.extend([E::InvalidOneTimeToken, overloaded()]);
            errors
        }
        "change_password" => {
            let mut errors = Vec::from(password());
            errors.extend([E::InvalidCurrentPassword, overloaded()]);
            errors.extend([fresh(), E::ImpersonatedSession]);
            errors
        }
        "admin_list_users" | "admin_audit" | "admin_list_clients" => vec![],
        "admin_get_user" | "admin_user_sessions" => vec![not_found()],
        "admin_revoke_user_sessions" | "admin_revoke_session" | "admin_clear_login_lock" => {
            vec![not_found(), fresh()]
        }
        "admin_update_user" => vec![not_found(), conflict("cannot_modify_self"), fresh()],
        "admin_ban_user" => vec![
            not_found(),
            invalid("invalid_ban_reason"),
            invalid("invalid_ban_until"),
            conflict("cannot_modify_self"),
            fresh(),
        ],
        "admin_unban_user" => vec![not_found(), fresh()],
        "admin_remove_user_mfa" => vec![
            not_found(),
            fresh(),
            conflict("cannot_modify_self"),
            conflict("mfa_not_enabled"),
        ],
        "admin_impersonate" => vec![
            not_found(),
            fresh(),
            conflict("cannot_modify_self"),
            conflict("cannot_impersonate_admin"),
            E::AccountDisabled,
        ],
        "admin_create_client" => vec![invalid("invalid_client_metadata"), fresh()],
        "admin_get_client" => vec![not_found()],
        "admin_update_client" => vec![
            not_found(),
            invalid("invalid_client_metadata"),
            conflict("builtin_client"),
            fresh(),
        ],
        "admin_delete_client" => vec![not_found(), conflict("builtin_client"), fresh()],
        "admin_rotate_client_secret" => {
            vec![not_found(), invalid("invalid_client_metadata"), fresh()]
        }
        "admin_list_mail" => vec![],
        "admin_retry_mail" => vec![not_found(), conflict("mail_not_dead"), fresh()],
        "token" => vec![
            E::InvalidClient,
            E::InvalidGrant(String::new()),
            E::InvalidRefreshToken,
            E::UnauthorizedClient(String::new()),
            E::InvalidScope(String::new()),
        ],
        "introspect" | "revoke" => vec![E::InvalidClient],
        "userinfo" => vec![],
        "revocations" => vec![E::InvalidClient],
        _ => return None,
    })
}

/// The errors of one operation: those that follow from what it takes, and those of
/// [`endpoint_errors`].
fn operation_errors(path: &str, operation: &Value) -> Vec<Documented> {
    let oauth = renders_oauth_errors(path);
    let in_rendering = |e: CoreError| {
        if oauth {
            Documented::OAuth(OAuthError::Core(e))
        } else {
            Documented::Api(ApiError::Core(e))
        }
    };
    let mut errors = Vec::new();
    let body_types: Vec<&str> = operation
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
        .map(|content| content.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if body_types.contains(&"application/json") {
        errors.push(Documented::Api(ApiError::InvalidRequest(String::new())));
        errors.push(Documented::Api(ApiError::PayloadTooLarge { limit: 0 }));
    }
    if body_types.contains(&"application/x-www-form-urlencoded") {
        errors.push(Documented::OAuth(OAuthError::InvalidRequest(String::new())));
        errors.push(Documented::Api(ApiError::PayloadTooLarge { limit: 0 }));
    }
    if operation.get("operationId").and_then(Value::as_str) == Some("token") {
        errors.push(Documented::OAuth(OAuthError::UnsupportedGrantType(
            String::new(),
        )));
    }
    let parameters = operation
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let located = |place: &str| {
        parameters
            .iter()
            .any(|p| p.get("in").and_then(Value::as_str) == Some(place))
    };
    if located("query") {
        errors.push(Documented::Api(ApiError::InvalidRequest(String::new())));
    }
    if located("path") {
        errors.push(Documented::Api(ApiError::NotFound));
    }
    let schemes: Vec<String> = operation
        .get("security")
        .and_then(Value::as_array)
        .map(|requirements| {
            requirements
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|r| r.keys().cloned())
                .collect()
        })
        .unwrap_or_default();
    if schemes.iter().any(|s| s == "bearer") {
        errors.push(Documented::Api(ApiError::Core(CoreError::Unauthenticated)));
        errors.push(Documented::Api(ApiError::Core(
            CoreError::InsufficientScope {
                scope: "",
                message: String::new(),
            },
        )));
        if path.starts_with("/api/v1/admin/") {
            errors.push(Documented::Api(ApiError::Core(CoreError::Forbidden)));
        }
    }
    let id = operation
        .get("operationId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    errors.extend(
        endpoint_errors(id)
            .unwrap_or_default()
            .into_iter()
            .map(in_rendering),
    );
    if path != "/healthz" && path != "/api/v1/openapi.json" {
        errors.push(in_rendering(CoreError::Unavailable {
            reason: "database_unreachable",
            source: None,
        }));
    }
    // The rate limiter counts every request but the probes (crate::rate_limit::classify).
    let method = operation
        .get("x-method")
        .and_then(Value::as_str)
        .and_then(|m| actix_web::http::Method::from_bytes(m.as_bytes()).ok())
        .unwrap_or(actix_web::http::Method::GET);
    if let Some((class, _)) = crate::rate_limit::classify(&method, path) {
        errors.push(in_rendering(CoreError::RateLimited(Box::new(
            gatehouse_core::rate_limit::Decision {
                class,
                scope: gatehouse_core::rate_limit::Scope::Ip,
                allowed: false,
                limit: 1,
                remaining: 0,
                window: wait(),
                reset: wait(),
                retry_after: Some(wait()),
            },
        ))));
    }
    // The request limits apply before any route (crate::request_limits).
    errors.push(Documented::Api(ApiError::UriTooLong(String::new())));
    errors.push(Documented::Api(ApiError::HeadersTooLarge(String::new())));
    errors
}

/// Adds a response per error status to `operation`: the error body with the codes the
/// operation may answer at that status, and `Retry-After` on `429` and `503`.
fn add_error_responses(path: &str, operation: &mut Value) {
    // status -> rendering -> codes, in order, without repeats.
    let mut by_status: BTreeMap<u16, BTreeMap<&'static str, Vec<&'static str>>> = BTreeMap::new();
    for error in operation_errors(path, operation) {
        let codes = by_status
            .entry(error.status().as_u16())
            .or_default()
            .entry(error.schema_name())
            .or_default();
        if !codes.contains(&error.code()) {
            codes.push(error.code());
        }
    }
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, renderings) in by_status {
        let mut schemas: Vec<Value> = renderings
            .iter()
            .map(|(schema, codes)| {
                json!({
                    "allOf": [{ "$ref": format!("#/components/schemas/{schema}") }],
                    "properties": { "error": { "type": "string", "enum": codes } },
                })
            })
            .collect();
        let schema = if schemas.len() == 1 {
            schemas.remove(0)
        } else {
            json!({ "anyOf": schemas })
        };
        let all_codes: Vec<String> = renderings
            .values()
            .flatten()
            .map(|code| format!("`{code}`"))
            .collect();
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let mut response = json!({
            "description": format!("{reason}: {}", all_codes.join(", ")),
            "content": { "application/json": { "schema": schema } },
        });
        if status == 429 || status == 503 {
            response["headers"] = json!({
                "Retry-After": {
                    "description": "Seconds to wait before trying again",
                    "required": true,
                    "schema": { "type": "integer", "minimum": 0 },
                }
            });
        }
        responses.insert(status.to_string(), response);
    }
}

pub use bodies::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn operations() -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        if let Some(paths) = document()["paths"].as_object() {
            for (path, item) in paths {
                for (method, op) in item.as_object().into_iter().flatten() {
                    out.push((path.clone(), method.clone(), op.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_operation_has_its_errors_listed_and_a_unique_id() {
        let mut ids = Vec::new();
        for (path, method, op) in operations() {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            let base = id.strip_suffix("_post").unwrap_or(&id);
            assert!(
                endpoint_errors(base).is_some(),
                "{method} {path}: operation `{id}` is missing from endpoint_errors"
            );
            assert!(!ids.contains(&id), "operation id `{id}` twice");
            ids.push(id);
        }
        assert!(ids.len() > 30, "{ids:?}");
    }

    #[test]
    fn error_responses_carry_the_codes_of_the_error_table() {
        let login = &document()["paths"]["/api/v1/login"]["post"]["responses"];
        let codes_401 =
            &login["401"]["content"]["application/json"]["schema"]["properties"]["error"]["enum"];
        assert_eq!(codes_401, &json!(["invalid_credentials"]));
        let codes_403 =
            &login["403"]["content"]["application/json"]["schema"]["properties"]["error"]["enum"];
        assert_eq!(
            codes_403,
            &json!(["email_not_verified", "account_disabled", "account_banned"])
        );
        assert!(login["429"]["headers"]["Retry-After"].is_object());
        let token = &document()["paths"]["/oauth2/token"]["post"]["responses"];
        let oauth_400 = token["400"]["content"]["application/json"]["schema"].to_string();
        assert!(oauth_400.contains("OAuthErrorBody"), "{oauth_400}");
        assert!(oauth_400.contains("unsupported_grant_type"), "{oauth_400}");
    }
}
