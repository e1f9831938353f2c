//! The JSON API of end users: sign-up, email verification, login, tokens, sessions and
//! passwords.

use actix_web::{HttpResponse, delete, get, post, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::oauth::clients::API_CLIENT_ID;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Authenticated, ClientMeta};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(signup)
        .service(verify_email)
        .service(resend_verification)
        .service(login)
        .service(refresh)
        .service(logout)
        .service(me)
        .service(list_sessions)
        .service(revoke_session)
        .service(forgot_password)
        .service(reset_password)
        .service(change_password);
}

/// The same answer whether or not an account exists for the address.
fn accepted(message: &str) -> HttpResponse {
    HttpResponse::Accepted().json(json!({ "message": message }))
}

#[derive(Deserialize)]
struct SignupRequest {
    email: String,
    password: SecretString,
    name: Option<String>,
}

#[post("/signup")]
async fn signup(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    gatehouse
        .sign_up(&body.email, body.password, body.name.as_deref(), &meta)
        .await?;
    Ok(accepted(
        "check your inbox: we sent a message to confirm the address",
    ))
}

#[derive(Deserialize)]
struct TokenRequest {
    token: SecretString,
}

#[post("/email/verify")]
async fn verify_email(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    gatehouse
        .verify_email(body.token.expose_secret(), &meta)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "email_verified": true })))
}

#[derive(Deserialize)]
struct EmailRequest {
    email: String,
}

#[post("/email/verify/resend")]
async fn resend_verification(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    gatehouse.resend_verification(&body.email, &meta).await?;
    Ok(accepted(
        "if the address has an unverified account, a new link is on its way",
    ))
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: SecretString,
}

#[post("/login")]
async fn login(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let tokens = gatehouse.log_in(&body.email, body.password, &meta).await?;
    Ok(HttpResponse::Ok().json(tokens))
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: SecretString,
}

#[post("/token/refresh")]
async fn refresh(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = gatehouse
        .refresh(body.refresh_token.expose_secret(), API_CLIENT_ID, &meta)
        .await?;
    Ok(HttpResponse::Ok().json(tokens))
}

#[post("/logout")]
async fn logout(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, ApiError> {
    gatehouse.log_out(&principal, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[get("/me")]
async fn me(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.me(&principal).await?))
}

#[get("/sessions")]
async fn list_sessions(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.list_own_sessions(&principal).await?))
}

#[delete("/sessions/{id}")]
async fn revoke_session(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    gatehouse.revoke_own_session(&principal, *id, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[post("/password/forgot")]
async fn forgot_password(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    gatehouse.forgot_password(&body.email, &meta).await?;
    Ok(accepted(
        "if the address has an account, a reset link is on its way",
    ))
}

#[derive(Deserialize)]
struct ResetRequest {
    token: SecretString,
    password: SecretString,
}

#[post("/password/reset")]
async fn reset_password(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<ResetRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    gatehouse
        .reset_password(body.token.expose_secret(), body.password, &meta)
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "message": "password changed; every session was signed out" })))
}

#[derive(Deserialize)]
struct ChangePasswordRequest {
    current_password: SecretString,
    new_password: SecretString,
}

#[post("/password/change")]
async fn change_password(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    gatehouse
        .change_password(&principal, body.current_password, body.new_password, &meta)
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "message": "password changed; your other sessions were signed out" })))
}
