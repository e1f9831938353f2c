//! The forgot-password and reset-password pages.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::verify_email::{EmailForm, TokenQuery};
use super::{empty_secret, min_length, rerender, show};
use crate::browser::{BrowserSession, Pages};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::rate_limit::RateLimits;
use gatehouse_core::rate_limit::RateClass;

#[get("/forgot-password")]
pub(super) async fn forgot_page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    show(&pages, &browser, "forgot_password.html", context! {})
}

pub(super) async fn forgot(
    CsrfForm(form): CsrfForm<EmailForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
) -> Result<HttpResponse, PageError> {
    if let Err(e) = limits.email(RateClass::Mail, &form.email).await {
        let view = context! { email => form.email };
        return rerender(&pages, &browser, "forgot_password.html", e, "form", view);
    }
    match gatehouse.forgot_password(&form.email, &meta).await {
        Ok(()) => pages.message(
            StatusCode::OK,
            "Check your email",
            "If an account uses this address, we sent it a link to choose a new password. The link works for a limited time.",
            None,
        ),
        Err(e) => {
            let view = context! { email => form.email };
            rerender(&pages, &browser, "forgot_password.html", e, "form", view)
        }
    }
}

#[get("/reset-password")]
pub(super) async fn reset_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    let view = context! { token => query.token, min_length => min_length(&gatehouse) };
    show(&pages, &browser, "reset_password.html", view)
}

#[derive(Deserialize)]
pub(super) struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default = "empty_secret")]
    new_password: SecretString,
}

pub(super) async fn reset(
    CsrfForm(form): CsrfForm<ResetForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
) -> Result<HttpResponse, PageError> {
    if let Err(e) = limits
        .account(RateClass::PasswordReset, form.token.trim())
        .await
    {
        let view = context! { token => form.token, min_length => min_length(&gatehouse) };
        return rerender(
            &pages,
            &browser,
            "reset_password.html",
            e,
            "new_password",
            view,
        );
    }
    match gatehouse
        .reset_password(form.token.trim(), form.new_password, &meta)
        .await
    {
        Ok(()) => password_changed(&pages),
        Err(e) => {
            let view = context! { token => form.token, min_length => min_length(&gatehouse) };
            rerender(
                &pages,
                &browser,
                "reset_password.html",
                e,
                "new_password",
                view,
            )
        }
    }
}

fn password_changed(pages: &Pages) -> Result<HttpResponse, PageError> {
    pages.message(
        StatusCode::OK,
        "Password changed",
        "Your new password is set, and every session signed in with the old one has ended.",
        Some(("/login", "Log in")),
    )
}
