//! The JSON API of end users: sign-up, email verification, login, tokens, sessions,
//! passwords, changing the address and deleting the account.

use actix_web::{HttpResponse, delete, get, post, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::oauth::clients::API_CLIENT_ID;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Authenticated, ClientMeta};
use crate::rate_limit::RateLimits;
use gatehouse_core::rate_limit::RateClass;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(signup)
        .service(verify_email)
        .service(resend_verification)
        .service(login)
        .service(login_second_factor)
        .service(reauthenticate)
        .service(start_totp)
        .service(confirm_totp)
        .service(remove_totp)
        .service(list_identities)
        .service(unlink_identity)
        .service(regenerate_recovery_codes)
        .service(refresh)
        .service(logout)
        .service(me)
        .service(delete_me)
        .service(request_email_change)
        .service(confirm_email_change)
        .service(undo_email_change)
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

#[derive(Deserialize, utoipa::ToSchema)]
struct SignupRequest {
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/signup",
    tag = "account",
    request_body = SignupRequest,
    responses((status = 202, description = "Accepted, whether or not the address had an account", body = crate::openapi::bodies::Message)),
)]
#[post("/signup")]
async fn signup(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    limits.email(RateClass::Signup, &body.email).await?;
    limits.email(RateClass::Mail, &body.email).await?;
    gatehouse
        .sign_up(&body.email, body.password, body.name.as_deref(), &meta)
        .await?;
    Ok(accepted(
        "check your inbox: we sent a message to confirm the address",
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct TokenRequest {
    #[schema(value_type = String, format = Password)]
    token: SecretString,
}

#[utoipa::path(
    post,
    path = "/api/v1/email/verify",
    tag = "account",
    request_body = TokenRequest,
    responses((status = 200, description = "The address is verified", body = crate::openapi::bodies::EmailVerified)),
)]
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

#[derive(Deserialize, utoipa::ToSchema)]
struct EmailRequest {
    email: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/email/verify/resend",
    tag = "account",
    request_body = EmailRequest,
    responses((status = 202, description = "Accepted, whether or not the address had an unverified account", body = crate::openapi::bodies::Message)),
)]
#[post("/email/verify/resend")]
async fn resend_verification(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    limits.email(RateClass::Mail, &body.email).await?;
    gatehouse.resend_verification(&body.email, &meta).await?;
    Ok(accepted(
        "if the address has an unverified account, a new link is on its way",
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginRequest {
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// The `device_token` an earlier login to this account answered: this client is
    /// then judged by its own failed logins, not by the account-wide lock.
    #[schema(value_type = Option<String>, format = Password)]
    device_token: Option<SecretString>,
}

#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "account",
    request_body = LoginRequest,
    responses((status = 200, description = "A new session's token pair, or `{mfa_required, mfa_token}` when the account has two-factor authentication", body = gatehouse_core::sessions::login::ApiLogin)),
)]
#[post("/login")]
async fn login(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let device_token = body.device_token.as_ref().map(|t| t.expose_secret());
    limits.login(&gatehouse, &body.email, device_token).await?;
    let login = gatehouse
        .log_in(&body.email, body.password, device_token, &meta)
        .await?;
    Ok(HttpResponse::Ok().json(login))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RefreshRequest {
    #[schema(value_type = String, format = Password)]
    refresh_token: SecretString,
}

#[utoipa::path(
    post,
    path = "/api/v1/token/refresh",
    tag = "account",
    request_body = RefreshRequest,
    responses((status = 200, description = "A rotated token pair", body = gatehouse_core::sessions::TokenPair)),
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 204, description = "The session of the access token is ended")),
)]
#[post("/logout")]
async fn logout(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, ApiError> {
    gatehouse.log_out(&principal, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's account", body = gatehouse_core::accounts::MeView)),
)]
#[get("/me")]
async fn me(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.me(&principal).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/me",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 204, description = "The account is deleted: every session ended, its data erased, its audit entries kept without it")),
)]
#[delete("/me")]
async fn delete_me(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, ApiError> {
    gatehouse.delete_account(&principal, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/me/email",
    tag = "account",
    security(("bearer" = [])),
    request_body = EmailRequest,
    responses((status = 202, description = "Accepted, whether or not another account has the address; a confirmation link goes to it only if none has", body = crate::openapi::bodies::Message)),
)]
#[post("/me/email")]
async fn request_email_change(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    limits.email(RateClass::Mail, &body.email).await?;
    gatehouse
        .request_email_change(&principal, &body.email, &meta)
        .await?;
    Ok(accepted(
        "check the new address's inbox: the change takes effect when its link is opened",
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/me/email/confirm",
    tag = "account",
    request_body = TokenRequest,
    responses((status = 200, description = "The account uses the new address, verified; the old address got a link that undoes the change", body = crate::openapi::bodies::Message)),
)]
#[post("/me/email/confirm")]
async fn confirm_email_change(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    gatehouse
        .confirm_email_change(body.token.expose_secret(), &meta)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "message": "email address changed" })))
}

#[utoipa::path(
    post,
    path = "/api/v1/me/email/undo",
    tag = "account",
    request_body = TokenRequest,
    responses((status = 200, description = "The old address is back, every session signed out; a password reset link went to the old address", body = crate::openapi::bodies::Message)),
)]
#[post("/me/email/undo")]
async fn undo_email_change(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    gatehouse
        .undo_email_change(body.token.expose_secret(), &meta)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "message": "email change undone; every session was signed out and a password reset link is on its way"
    })))
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's live sessions", body = Vec<gatehouse_core::sessions::SessionView>)),
)]
#[get("/sessions")]
async fn list_sessions(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.list_own_sessions(&principal).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{id}",
    tag = "account",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A session of the caller")),
    responses((status = 204, description = "The session is ended")),
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/password/forgot",
    tag = "account",
    request_body = EmailRequest,
    responses((status = 202, description = "Accepted, whether or not the address had an account", body = crate::openapi::bodies::Message)),
)]
#[post("/password/forgot")]
async fn forgot_password(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    limits.email(RateClass::Mail, &body.email).await?;
    gatehouse.forgot_password(&body.email, &meta).await?;
    Ok(accepted(
        "if the address has an account, a reset link is on its way",
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ResetRequest {
    #[schema(value_type = String, format = Password)]
    token: SecretString,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

#[utoipa::path(
    post,
    path = "/api/v1/password/reset",
    tag = "account",
    request_body = ResetRequest,
    responses((status = 200, description = "The password is changed and every session signed out", body = crate::openapi::bodies::Message)),
)]
#[post("/password/reset")]
async fn reset_password(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Json<ResetRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    limits
        .account(RateClass::PasswordReset, body.token.expose_secret())
        .await?;
    gatehouse
        .reset_password(body.token.expose_secret(), body.password, &meta)
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "message": "password changed; every session was signed out" })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

#[utoipa::path(
    post,
    path = "/api/v1/password/change",
    tag = "account",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 200, description = "The password is changed and the other sessions signed out", body = crate::openapi::bodies::Message)),
)]
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

#[derive(Deserialize, utoipa::ToSchema)]
struct MfaLoginRequest {
    /// The `mfa_token` the password step answered.
    #[schema(value_type = String, format = Password)]
    mfa_token: SecretString,
    /// A code of the authenticator app, or one of the recovery codes.
    #[schema(value_type = String, format = Password)]
    code: SecretString,
    #[schema(value_type = Option<String>, format = Password)]
    device_token: Option<SecretString>,
}

#[utoipa::path(
    post,
    path = "/api/v1/login/mfa",
    tag = "account",
    request_body = MfaLoginRequest,
    responses((status = 200, description = "A new session's token pair", body = gatehouse_core::sessions::login::ApiLogin)),
)]
#[post("/login/mfa")]
async fn login_second_factor(
    gatehouse: web::Data<Gatehouse>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Json<MfaLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let device_token = body.device_token.as_ref().map(|t| t.expose_secret());
    limits
        .account(RateClass::Login, body.mfa_token.expose_secret())
        .await?;
    let opened = gatehouse
        .log_in_second_factor(body.mfa_token, body.code, device_token, &meta)
        .await?;
    Ok(HttpResponse::Ok().json(opened))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ReauthenticateRequest {
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// Required when the account has two-factor authentication: a code of the
    /// authenticator app, or a recovery code.
    #[schema(value_type = Option<String>, format = Password)]
    code: Option<SecretString>,
}

#[utoipa::path(
    post,
    path = "/api/v1/reauthenticate",
    tag = "account",
    security(("bearer" = [])),
    request_body = ReauthenticateRequest,
    responses((status = 204, description = "The session is freshly authenticated for `auth.fresh_age`")),
)]
#[post("/reauthenticate")]
async fn reauthenticate(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
    body: web::Json<ReauthenticateRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    gatehouse
        .reauthenticate(&principal, body.password, body.code, &meta)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/mfa/totp",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "A pending enrolment: add the secret to an authenticator app, then confirm with a code", body = gatehouse_core::accounts::mfa::TotpEnrolmentView)),
)]
#[post("/mfa/totp")]
async fn start_totp(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.start_totp_enrolment(&principal).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CodeRequest {
    /// The six digits the authenticator app shows now.
    code: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/mfa/totp/confirm",
    tag = "account",
    security(("bearer" = [])),
    request_body = CodeRequest,
    responses((status = 200, description = "Two-factor authentication is on; the recovery codes are shown this once", body = gatehouse_core::accounts::mfa::RecoveryCodesView)),
)]
#[post("/mfa/totp/confirm")]
async fn confirm_totp(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    limits
        .account(RateClass::Login, &principal.user_id.to_string())
        .await?;
    let codes = gatehouse
        .confirm_totp(&principal, &body.code, &meta)
        .await?;
    Ok(HttpResponse::Ok().json(codes))
}

#[utoipa::path(
    delete,
    path = "/api/v1/mfa/totp",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 204, description = "Two-factor authentication is off")),
)]
#[delete("/mfa/totp")]
async fn remove_totp(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, ApiError> {
    gatehouse.remove_totp(&principal, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/me/identities",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "The upstream providers' identities linked to the account, oldest first", body = Vec<gatehouse_core::federation::IdentityView>)),
)]
#[get("/me/identities")]
async fn list_identities(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.linked_identities(&principal).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/me/identities/{id}",
    tag = "account",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The identity's id")),
    responses((status = 204, description = "The identity no longer signs in to the account")),
)]
#[delete("/me/identities/{id}")]
async fn unlink_identity(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    gatehouse
        .unlink_identity(&principal, id.into_inner(), &meta)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/mfa/recovery-codes",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "A new set of recovery codes, shown this once; the old ones stop working", body = gatehouse_core::accounts::mfa::RecoveryCodesView)),
)]
#[post("/mfa/recovery-codes")]
async fn regenerate_recovery_codes(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, ApiError> {
    let codes = gatehouse
        .regenerate_recovery_codes(&principal, &meta)
        .await?;
    Ok(HttpResponse::Ok().json(codes))
}
