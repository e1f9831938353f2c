//! OAuth 2.0 endpoints: token (RFC 6749), introspection (RFC 7662), revocation (RFC 7009),
//! userinfo (OpenID Connect Core 5.3). Errors are answered in RFC 6749 form by
//! [`OAuthError`]; the browser endpoints are in [`super::authorize`].

use actix_web::{HttpRequest, HttpResponse, post, web};
use gatehouse_core::oauth::clients::Client;
use gatehouse_core::{Gatehouse, RequestMeta};

use crate::error::{ApiError, OAuthError};
use crate::extract::{ClientMeta, OAuthForm, bearer_token, client_credentials};
use crate::rate_limit::RateLimits;
use gatehouse_core::rate_limit::RateClass;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/oauth2")
            .service(token)
            .service(introspect)
            .service(revoke)
            .service(
                web::resource("/userinfo")
                    .route(web::get().to(userinfo))
                    .route(web::post().to(userinfo)),
            )
            .configure(super::authorize::configure_oauth2),
    );
}

fn form(body: web::Form<Vec<(String, String)>>) -> OAuthForm {
    OAuthForm(body.into_inner())
}

#[utoipa::path(
    post,
    path = "/oauth2/token",
    tag = "oauth2",
    security((), ("client_basic" = [])),
    request_body(content = crate::openapi::bodies::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The tokens of the grant", body = crate::openapi::bodies::TokenResponse)),
)]
#[post("/token")]
async fn token(
    req: HttpRequest,
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, OAuthError> {
    let form = form(body);
    let grant_type = form.require("grant_type")?;
    let client = gatehouse
        .authenticate_client(&client_credentials(&req, Some(&form))?)
        .await?;
    limits.client(RateClass::Token, &client, &meta).await?;
    grant(&gatehouse, &client, grant_type, &form, &meta).await
}

/// One grant of the token endpoint: its parameters from the form, one call into the core.
async fn grant(
    gatehouse: &Gatehouse,
    client: &Client,
    grant_type: &str,
    form: &OAuthForm,
    meta: &RequestMeta,
) -> Result<HttpResponse, OAuthError> {
    Ok(match grant_type {
        "client_credentials" => HttpResponse::Ok().json(
            gatehouse
                .client_credentials_grant(client, form.get("scope")?)
                .await?,
        ),
        "refresh_token" => HttpResponse::Ok().json(
            gatehouse
                .refresh_token_grant(client, form.require("refresh_token")?, meta)
                .await?,
        ),
        "authorization_code" => HttpResponse::Ok().json(
            gatehouse
                .exchange_authorization_code(
                    client,
                    form.require("code")?,
                    form.get("redirect_uri")?,
                    form.get("code_verifier")?,
                    meta,
                )
                .await?,
        ),
        other => return Err(OAuthError::UnsupportedGrantType(other.to_owned())),
    })
}

#[utoipa::path(
    post,
    path = "/oauth2/introspect",
    tag = "oauth2",
    security(("client_basic" = []), ()),
    request_body(content = crate::openapi::bodies::IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Whether the token is active, with its claims if so", body = crate::openapi::bodies::Introspection)),
)]
#[post("/introspect")]
async fn introspect(
    req: HttpRequest,
    gatehouse: web::Data<Gatehouse>,
    limits: RateLimits,
    body: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, OAuthError> {
    let form = form(body);
    let client = gatehouse
        .authenticate_confidential_client(&client_credentials(&req, Some(&form))?)
        .await?;
    limits.account(RateClass::Introspect, client.id()).await?;
    let answer = gatehouse
        .introspect(form.require("token")?, form.get("token_type_hint")?)
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

#[utoipa::path(
    post,
    path = "/oauth2/revoke",
    tag = "oauth2",
    security((), ("client_basic" = [])),
    request_body(content = crate::openapi::bodies::RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked, or the token was not valid anyway (RFC 7009)")),
)]
#[post("/revoke")]
async fn revoke(
    req: HttpRequest,
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, OAuthError> {
    let form = form(body);
    let client = gatehouse
        .authenticate_client(&client_credentials(&req, Some(&form))?)
        .await?;
    limits.client(RateClass::Token, &client, &meta).await?;
    gatehouse
        .revoke_token(&client, form.require("token")?, &meta)
        .await?;
    Ok(HttpResponse::Ok().finish())
}

/// The claims about the user that the access token's scopes allow (`GET` or `POST`).
#[utoipa::path(
    method(get, post),
    path = "/oauth2/userinfo",
    tag = "oauth2",
    security(("bearer" = [])),
    responses((status = 200, description = "The claims the token's scopes allow", body = crate::openapi::bodies::UserInfo)),
)]
async fn userinfo(
    req: HttpRequest,
    gatehouse: web::Data<Gatehouse>,
) -> Result<HttpResponse, ApiError> {
    let access_token = bearer_token(&req).ok_or(gatehouse_core::Error::Unauthenticated)?;
    Ok(HttpResponse::Ok().json(gatehouse.userinfo(access_token).await?))
}
