//! The login page. After a login the browser goes back to the authorization request it
//! came with, or to the account page.

use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::{empty_secret, rerender, show};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;

#[derive(Deserialize)]
struct LoginQuery {
    email: Option<String>,
    verified: Option<String>,
}

#[get("/login")]
pub(super) async fn page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    let pending = browser.pending_authorization()?;
    if pending.is_none() && browser.user().await?.is_some() {
        return Ok(see_other("/account/sessions"));
    }
    let email = query
        .email
        .clone()
        .or_else(|| pending.and_then(|p| p.request.login_hint));
    let notice = query
        .verified
        .as_ref()
        .map(|_| "Your email address is verified. Log in to continue.");
    let view = context! { email, notice, client_name => client_name(&browser)? };
    show(&pages, &browser, "login.html", view)
}

/// The app the login is for, if an authorization request waits for it.
fn client_name(browser: &BrowserSession) -> Result<Option<String>, PageError> {
    Ok(browser
        .pending_authorization()?
        .map(|p| p.request.client_name))
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default = "empty_secret")]
    password: SecretString,
}

pub(super) async fn log_in(
    CsrfForm(form): CsrfForm<LoginForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    match gatehouse
        .log_in_browser(&form.email, form.password, &meta)
        .await
    {
        Ok(login) => {
            browser.start_login(login.session_id)?;
            Ok(see_other(browser.after_login()?))
        }
        Err(e) => {
            let unverified = matches!(e, gatehouse_core::Error::EmailNotVerified);
            let view = context! {
                email => form.email,
                client_name => client_name(&browser)?,
                unverified_email => unverified.then_some(form.email.as_str()),
            };
            rerender(&pages, &browser, "login.html", e, "password", view)
        }
    }
}
