//! The sign-up page: creates the account and sends the verification mail.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::{empty_secret, min_length, rerender, show};
use crate::browser::{BrowserSession, Pages};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::rate_limit::RateLimits;
use gatehouse_core::rate_limit::RateClass;

#[get("/signup")]
pub(super) async fn page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    let pending = browser.pending_authorization()?;
    let view = context! {
        email => pending.as_ref().and_then(|p| p.request.login_hint.clone()),
        min_length => min_length(&gatehouse),
        client_name => pending.map(|p| p.request.client_name),
    };
    show(&pages, &browser, "signup.html", view)
}

#[derive(Deserialize)]
pub(super) struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default = "empty_secret")]
    new_password: SecretString,
}

pub(super) async fn sign_up(
    CsrfForm(form): CsrfForm<SignupForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
) -> Result<HttpResponse, PageError> {
    let limited = match limits.email(RateClass::Signup, &form.email).await {
        Ok(()) => limits.email(RateClass::Mail, &form.email).await,
        refused => refused,
    };
    if let Err(e) = limited {
        let view = context! {
            email => form.email,
            name => form.name,
            min_length => min_length(&gatehouse),
            client_name => browser.pending_authorization()?.map(|p| p.request.client_name),
        };
        return rerender(&pages, &browser, "signup.html", e, "new_password", view);
    }
    let name = Some(form.name.trim()).filter(|n| !n.is_empty());
    match gatehouse
        .sign_up(&form.email, form.new_password, name, &meta)
        .await
    {
        Ok(_) => check_your_email(&pages, &form.email),
        Err(e) => {
            let view = context! {
                email => form.email,
                name => form.name,
                min_length => min_length(&gatehouse),
                client_name => browser.pending_authorization()?.map(|p| p.request.client_name),
            };
            rerender(&pages, &browser, "signup.html", e, "new_password", view)
        }
    }
}

/// The page after a sign-up: the same whether or not the address had an account.
fn check_your_email(pages: &Pages, email: &str) -> Result<HttpResponse, PageError> {
    pages.message(
        StatusCode::OK,
        "Check your email",
        &format!(
            "We sent a link to {} to confirm the address. Open it to finish creating your account.",
            email.trim()
        ),
        None,
    )
}
