//! The hosted pages: log in, sign up, verify email, forgot and reset password, the
//! account's sessions and apps, and log out. Plain HTML forms; no script.
//!
//! Every POST carries the browser session's CSRF token (403 without it). Mistakes are
//! shown next to their field, keeping what was typed except passwords.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use gatehouse_core::Gatehouse;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::{PageError, form_error};
use crate::extract::ClientMeta;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(stylesheet)
        .service(login_page)
        .service(login)
        .service(signup_page)
        .service(signup)
        .service(verify_email_page)
        .service(verify_email)
        .service(resend_verification)
        .service(forgot_password_page)
        .service(forgot_password)
        .service(reset_password_page)
        .service(reset_password)
        .service(sessions_page)
        .service(revoke_session)
        .service(revoke_other_sessions)
        .service(withdraw_consent)
        .service(logout_page)
        .service(logout);
}

type Errors = HashMap<&'static str, String>;

fn one_error(field: &'static str, message: String) -> Errors {
    HashMap::from([(field, message)])
}

#[get("/assets/gatehouse.css")]
async fn stylesheet(pages: web::Data<Pages>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(pages.stylesheet().to_owned())
}

#[derive(Deserialize)]
struct LoginQuery {
    email: Option<String>,
    verified: Option<String>,
}

#[get("/login")]
async fn login_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    let pending = browser.pending_authorization()?;
    if pending.is_none() && browser.user().await?.is_some() {
        return Ok(see_other("/account/sessions"));
    }
    let email = query
        .email
        .clone()
        .or_else(|| pending.as_ref().and_then(|p| p.request.login_hint.clone()))
        .unwrap_or_default();
    let notice = query
        .verified
        .as_ref()
        .map(|_| "Your email address is verified. Log in to continue.");
    render_login(
        &pages,
        &browser,
        StatusCode::OK,
        &email,
        Errors::new(),
        notice,
        None,
    )
}

fn render_login(
    pages: &Pages,
    browser: &BrowserSession<'_>,
    status: StatusCode,
    email: &str,
    errors: Errors,
    notice: Option<&str>,
    unverified_email: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let client_name = browser
        .pending_authorization()?
        .map(|p| p.request.client_name);
    pages.render(
        status,
        "login.html",
        &browser.csrf_token()?,
        context! { email, errors, notice, client_name, unverified_email },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    csrf_token: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default = "empty_secret")]
    password: SecretString,
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

#[post("/login")]
async fn login(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    browser.check_csrf(form.csrf_token.as_deref())?;
    let form = form.into_inner();
    match gatehouse
        .log_in_browser(&form.email, form.password, &meta)
        .await
    {
        Ok(login) => {
            browser.start_login(login.session_id)?;
            if let Some(mut pending) = browser.pending_authorization()? {
                pending.logged_in = true;
                browser.set_pending_authorization(&pending)?;
                return Ok(see_other("/oauth2/authorize/continue"));
            }
            Ok(see_other("/account/sessions"))
        }
        Err(e) => {
            let unverified = matches!(e, gatehouse_core::Error::EmailNotVerified);
            let (status, field, message) = form_error(&e, "password").ok_or(e)?;
            render_login(
                &pages,
                &browser,
                status,
                &form.email,
                one_error(field, message),
                None,
                unverified.then_some(form.email.as_str()),
            )
        }
    }
}

fn min_length(gatehouse: &Gatehouse) -> usize {
    gatehouse.password_rules().min_length
}

#[get("/signup")]
async fn signup_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    let pending = browser.pending_authorization()?;
    pages.render(
        StatusCode::OK,
        "signup.html",
        &browser.csrf_token()?,
        context! {
            email => pending.as_ref().and_then(|p| p.request.login_hint.clone()),
            min_length => min_length(&gatehouse),
            client_name => pending.map(|p| p.request.client_name),
        },
    )
}

#[derive(Deserialize)]
struct SignupForm {
    csrf_token: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default = "empty_secret")]
    new_password: SecretString,
}

#[post("/signup")]
async fn signup(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    form: web::Form<SignupForm>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    browser.check_csrf(form.csrf_token.as_deref())?;
    let form = form.into_inner();
    let name = Some(form.name.trim()).filter(|n| !n.is_empty());
    match gatehouse
        .sign_up(&form.email, form.new_password, name, &meta)
        .await
    {
        Ok(_) => pages.message(
            StatusCode::OK,
            "Check your email",
            &format!(
                "We sent a link to {} to confirm the address. Open it to finish creating your account.",
                form.email.trim()
            ),
            None,
        ),
        Err(e) => {
            let (status, field, message) = form_error(&e, "new_password").ok_or(e)?;
            let pending = browser.pending_authorization()?;
            pages.render(
                status,
                "signup.html",
                &browser.csrf_token()?,
                context! {
                    email => form.email,
                    name => form.name,
                    errors => one_error(field, message),
                    min_length => min_length(&gatehouse),
                    client_name => pending.map(|p| p.request.client_name),
                },
            )
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

#[get("/verify-email")]
async fn verify_email_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    // The link only fills the form: mail scanners that open links do not use it up.
    pages.render(
        StatusCode::OK,
        "verify_email.html",
        &browser.csrf_token()?,
        context! { token => query.token },
    )
}

#[derive(Deserialize)]
struct TokenForm {
    csrf_token: Option<String>,
    #[serde(default)]
    token: String,
}

#[post("/verify-email")]
async fn verify_email(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    browser.check_csrf(form.csrf_token.as_deref())?;
    match gatehouse.verify_email(form.token.trim(), &meta).await {
        Ok(()) if browser.pending_authorization()?.is_some() => Ok(see_other("/login?verified=1")),
        Ok(()) => pages.message(
            StatusCode::OK,
            "Email verified",
            "Your email address is confirmed. You can log in now.",
            Some(("/login?verified=1", "Log in")),
        ),
        Err(e) => {
            let (status, field, message) = form_error(&e, "password").ok_or(e)?;
            pages.render(
                status,
                "verify_email.html",
                &browser.csrf_token()?,
                context! { token => form.token, errors => one_error(field, message) },
            )
        }
    }
}

#[derive(Deserialize)]
struct EmailForm {
    csrf_token: Option<String>,
    #[serde(default)]
    email: String,
}

#[post("/verify-email/resend")]
async fn resend_verification(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    form: web::Form<EmailForm>,
) -> Result<HttpResponse, PageError> {
    BrowserSession::new(&session, &gatehouse).check_csrf(form.csrf_token.as_deref())?;
    gatehouse.resend_verification(&form.email, &meta).await?;
    pages.message(
        StatusCode::OK,
        "Check your email",
        "If the address belongs to an account that is not verified yet, a new link is on its way.",
        None,
    )
}

#[get("/forgot-password")]
async fn forgot_password_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    pages.render(
        StatusCode::OK,
        "forgot_password.html",
        &browser.csrf_token()?,
        context! {},
    )
}

#[post("/forgot-password")]
async fn forgot_password(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    form: web::Form<EmailForm>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    browser.check_csrf(form.csrf_token.as_deref())?;
    match gatehouse.forgot_password(&form.email, &meta).await {
        Ok(()) => pages.message(
            StatusCode::OK,
            "Check your email",
            "If an account uses this address, we sent it a link to choose a new password. The link works for a limited time.",
            None,
        ),
        Err(e) => {
            let (status, field, message) = form_error(&e, "password").ok_or(e)?;
            pages.render(
                status,
                "forgot_password.html",
                &browser.csrf_token()?,
                context! { email => form.email, errors => one_error(field, message) },
            )
        }
    }
}

#[get("/reset-password")]
async fn reset_password_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    pages.render(
        StatusCode::OK,
        "reset_password.html",
        &browser.csrf_token()?,
        context! { token => query.token, min_length => min_length(&gatehouse) },
    )
}

#[derive(Deserialize)]
struct ResetForm {
    csrf_token: Option<String>,
    #[serde(default)]
    token: String,
    #[serde(default = "empty_secret")]
    new_password: SecretString,
}

#[post("/reset-password")]
async fn reset_password(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    form: web::Form<ResetForm>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    browser.check_csrf(form.csrf_token.as_deref())?;
    let form = form.into_inner();
    match gatehouse
        .reset_password(form.token.trim(), form.new_password, &meta)
        .await
    {
        Ok(()) => pages.message(
            StatusCode::OK,
            "Password changed",
            "Your new password is set, and every session signed in with the old one has ended.",
            Some(("/login", "Log in")),
        ),
        Err(e) => {
            let (status, field, message) = form_error(&e, "new_password").ok_or(e)?;
            pages.render(
                status,
                "reset_password.html",
                &browser.csrf_token()?,
                context! {
                    token => form.token,
                    errors => one_error(field, message),
                    min_length => min_length(&gatehouse),
                },
            )
        }
    }
}

fn readable(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[get("/account/sessions")]
async fn sessions_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    let user = browser.user().await?.ok_or(PageError::LoginRequired)?;
    let sessions: Vec<_> = gatehouse
        .list_own_sessions(&user.principal())
        .await?
        .into_iter()
        .map(|s| {
            context! {
                id => s.id.to_string(),
                created_at => readable(s.created_at),
                last_seen_at => readable(s.last_seen_at),
                ip => s.ip,
                user_agent => s.user_agent,
                current => s.current,
            }
        })
        .collect();
    let apps: Vec<_> = gatehouse
        .app_consents(user.user_id)
        .await?
        .into_iter()
        .map(|a| {
            context! {
                client_id => a.client_id,
                client_name => a.client_name,
                scopes => a.scope,
                granted_at => readable(a.granted_at),
            }
        })
        .collect();
    pages.render(
        StatusCode::OK,
        "sessions.html",
        &browser.csrf_token()?,
        context! { user_email => user.email, sessions, apps },
    )
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: Option<String>,
}

/// The logged-in user of a form post, after the CSRF check.
async fn form_user(
    gatehouse: &Gatehouse,
    session: &Session,
    form: &CsrfForm,
) -> Result<gatehouse_core::sessions::browser::BrowserUser, PageError> {
    let browser = BrowserSession::new(session, gatehouse);
    browser.check_csrf(form.csrf_token.as_deref())?;
    browser.user().await?.ok_or(PageError::LoginRequired)
}

#[post("/account/sessions/{id}/revoke")]
async fn revoke_session(
    gatehouse: web::Data<Gatehouse>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    path: web::Path<Uuid>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let user = form_user(&gatehouse, &session, &form).await?;
    gatehouse
        .revoke_own_session(&user.principal(), path.into_inner(), &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}

#[post("/account/sessions/revoke-others")]
async fn revoke_other_sessions(
    gatehouse: web::Data<Gatehouse>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let user = form_user(&gatehouse, &session, &form).await?;
    gatehouse
        .revoke_other_sessions(&user.principal(), &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}

#[post("/account/apps/{client_id}/withdraw")]
async fn withdraw_consent(
    gatehouse: web::Data<Gatehouse>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let user = form_user(&gatehouse, &session, &form).await?;
    gatehouse
        .withdraw_consent(&user.principal(), &path, &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}

#[get("/logout")]
async fn logout_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    if browser.user().await?.is_none() {
        return signed_out(&pages, &browser, None);
    }
    let client_name = browser.pending_logout()?.and_then(|l| l.client_name);
    pages.render(
        StatusCode::OK,
        "logout.html",
        &browser.csrf_token()?,
        context! { client_name },
    )
}

#[post("/logout")]
async fn logout(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    browser.check_csrf(form.csrf_token.as_deref())?;
    if let Some(login_session) = browser.login()? {
        gatehouse.log_out_login(login_session, &meta).await?;
    }
    let redirect = browser.pending_logout()?.and_then(|l| l.redirect);
    signed_out(&pages, &browser, redirect.as_deref())
}

/// Ends the browser session and says so, or sends the browser back to the app.
pub fn signed_out(
    pages: &Pages,
    browser: &BrowserSession<'_>,
    redirect: Option<&str>,
) -> Result<HttpResponse, PageError> {
    browser.end();
    match redirect {
        Some(url) => Ok(see_other(url)),
        None => pages.message(
            StatusCode::OK,
            "Signed out",
            "You are signed out on this browser.",
            Some(("/login", "Log in again")),
        ),
    }
}
