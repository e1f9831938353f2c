//! The hosted pages, one module per page family: log in, sign up, verify email, password
//! (forgot and reset), email change (ask, confirm and undo), the account (sessions, apps
//! and deletion), two-factor authentication, providers, step-up, an admin's
//! impersonation (its link and banner), consent, and log out.
//! Plain HTML forms; no script.
//!
//! Every form post goes through the [`csrf::CsrfForm`] extractor (403 without this
//! browser's CSRF token), and every form route is declared once, in [`FORM_POSTS`]'s
//! macro. Mistakes are shown next to their field, keeping what was typed except passwords
//! (`rerender`).

mod account;
mod consent;
pub mod csrf;
mod email_change;
mod federation;
mod impersonation;
mod login;
mod logout;
mod mfa;
mod password;
mod reauthenticate;
mod signup;
mod verify_email;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::Value;
use secrecy::SecretString;

use crate::browser::{BrowserSession, Pages};
use crate::error::{PageError, form_error};

pub use logout::signed_out;

/// Declares the form posts of the hosted pages: each path with its handler, registered by
/// [`configure`] and listed in [`FORM_POSTS`] for the test that posts to every one of
/// them without a CSRF token. A page form is added here, or it does not exist.
macro_rules! form_posts {
    ($($path:literal => $handler:path,)*) => {
        /// The path of every form post of the hosted pages (with `{..}` path parameters).
        pub const FORM_POSTS: &[&str] = &[$($path),*];

        fn configure_form_posts(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::post().to($handler));)*
        }
    };
}

form_posts! {
    "/login" => login::log_in,
    "/login/mfa" => login::log_in_mfa,
    "/signup" => signup::sign_up,
    "/verify-email" => verify_email::verify,
    "/verify-email/resend" => verify_email::resend,
    "/forgot-password" => password::forgot,
    "/reset-password" => password::reset,
    "/account/sessions/{id}/revoke" => account::revoke_session,
    "/account/sessions/revoke-others" => account::revoke_other_sessions,
    "/account/apps/{client_id}/withdraw" => account::withdraw_consent,
    "/account/delete" => account::delete_account,
    "/account/email" => email_change::change,
    "/account/mfa/totp" => mfa::start,
    "/account/mfa/totp/confirm" => mfa::confirm,
    "/account/mfa/recovery-codes" => mfa::regenerate,
    "/account/mfa/remove" => mfa::remove,
    "/account/identities/link/{provider}" => federation::link,
    "/account/identities/{id}/unlink" => federation::unlink,
    "/confirm-email" => email_change::confirm,
    "/undo-email-change" => email_change::undo,
    "/consent" => consent::answer,
    "/logout" => logout::log_out,
    "/reauthenticate" => reauthenticate::reauthenticate,
    "/impersonate" => impersonation::open,
}

/// Registers the pages and their forms.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(stylesheet)
        .service(home)
        .service(login::page)
        .service(login::mfa_page)
        .service(signup::page)
        .service(verify_email::page)
        .service(password::forgot_page)
        .service(password::reset_page)
        .service(account::sessions_page)
        .service(account::delete_page)
        .service(email_change::change_page)
        .service(mfa::page)
        .service(email_change::confirm_page)
        .service(email_change::undo_page)
        .service(consent::page)
        .service(logout::page)
        .service(reauthenticate::page)
        .service(impersonation::page);
    configure_form_posts(cfg);
    // After `/login/mfa`: a provider's id is any other path segment.
    cfg.service(federation::start).service(federation::callback);
}

/// Mistakes of a form, by field (`form` for the whole form).
type Errors = HashMap<&'static str, String>;

/// The front door: where the hosted pages are, for a person who opens the bare address.
#[get("/")]
async fn home(pages: web::Data<Pages>, browser: BrowserSession) -> Result<HttpResponse, PageError> {
    show(&pages, &browser, "home.html", minijinja::context! {})
}

#[get("/assets/gatehouse.css")]
async fn stylesheet(pages: web::Data<Pages>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(pages.stylesheet().to_owned())
}

/// A form again, after a domain error it can show next to a field: the status and the
/// message come from [`form_error`]; `password_field` names the form's password input.
/// Errors that are no form mistake (a database outage, say) become the error page.
fn rerender(
    pages: &Pages,
    browser: &BrowserSession,
    template: &str,
    error: gatehouse_core::Error,
    password_field: &'static str,
    page: Value,
) -> Result<HttpResponse, PageError> {
    let (status, field, message) = form_error(&error, password_field).ok_or(error)?;
    render(
        pages,
        browser,
        status,
        template,
        Errors::from([(field, message)]),
        page,
    )
}

/// A page as first shown (no errors), with this browser's CSRF token.
fn show(
    pages: &Pages,
    browser: &BrowserSession,
    template: &str,
    page: Value,
) -> Result<HttpResponse, PageError> {
    render(
        pages,
        browser,
        StatusCode::OK,
        template,
        Errors::new(),
        page,
    )
}

/// A page with its form's errors, the branding and this browser's CSRF token.
fn render(
    pages: &Pages,
    browser: &BrowserSession,
    status: StatusCode,
    template: &str,
    errors: Errors,
    page: Value,
) -> Result<HttpResponse, PageError> {
    let page = minijinja::context! {
        errors => errors,
        impersonation => browser.impersonation()?,
        ..page
    };
    pages.render(status, template, &browser.csrf_token()?, page)
}

fn min_length(gatehouse: &Gatehouse) -> usize {
    gatehouse.password_rules().min_length
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

fn readable(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}
