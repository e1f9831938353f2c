//! The verify-email page: the link from the mail fills the form (so mail scanners that
//! open links do not use it up); posting it confirms the address. Also "send the link
//! again".

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::{rerender, show};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::rate_limit::RateLimits;
use gatehouse_core::rate_limit::RateClass;

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    pub(super) token: Option<String>,
}

#[get("/verify-email")]
pub(super) async fn page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    let view = context! { token => query.token };
    show(&pages, &browser, "verify_email.html", view)
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    pub(super) token: String,
}

pub(super) async fn verify(
    CsrfForm(form): CsrfForm<TokenForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    match gatehouse.verify_email(form.token.trim(), &meta).await {
        Ok(()) if browser.pending_authorization()?.is_some() => Ok(see_other("/login?verified=1")),
        Ok(()) => pages.message(
            StatusCode::OK,
            "Email verified",
            "Your email address is confirmed. You can log in now.",
            Some(("/login?verified=1", "Log in")),
        ),
        Err(e) => {
            let view = context! { token => form.token };
            rerender(&pages, &browser, "verify_email.html", e, "form", view)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct EmailForm {
    #[serde(default)]
    pub(super) email: String,
}

pub(super) async fn resend(
    CsrfForm(form): CsrfForm<EmailForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
) -> Result<HttpResponse, PageError> {
    limits.email(RateClass::Mail, &form.email).await?;
    gatehouse.resend_verification(&form.email, &meta).await?;
    pages.message(
        StatusCode::OK,
        "Check your email",
        "If the address belongs to an account that is not verified yet, a new link is on its way.",
        None,
    )
}
