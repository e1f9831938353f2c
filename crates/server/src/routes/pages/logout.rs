//! The logout page: the user confirms (a link alone must not log anyone out), then the
//! browser login and every app session under it end.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;

use super::account::EmptyForm;
use super::csrf::CsrfForm;
use super::show;
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;

#[get("/logout")]
pub(super) async fn page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    if browser.user().await?.is_none() {
        return signed_out(&pages, &browser, None);
    }
    let client_name = browser.pending_logout()?.and_then(|l| l.client_name);
    show(&pages, &browser, "logout.html", context! { client_name })
}

pub(super) async fn log_out(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    if let Some(login_session) = browser.login()? {
        gatehouse.log_out_login(login_session, &meta).await?;
    }
    let redirect = browser.pending_logout()?.and_then(|l| l.redirect);
    signed_out(&pages, &browser, redirect.as_deref())
}

/// Ends the browser session and says so, or sends the browser back to the app.
pub fn signed_out(
    pages: &Pages,
    browser: &BrowserSession,
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
