//! The login page. After a login the browser goes back to the authorization request it
//! came with, or to the account page.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::{empty_secret, rerender, show};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::rate_limit::RateLimits;

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

/// The device cookie's name: with the `__Secure-` prefix when the issuer is https.
fn device_cookie_name(gatehouse: &Gatehouse) -> &'static str {
    if gatehouse.issuer().starts_with("https://") {
        "__Secure-gatehouse_device"
    } else {
        "gatehouse_device"
    }
}

/// The device cookie: the browser's device token, sent back only to the login form's
/// address (`Path=/login`), never readable by scripts, `Secure` in production (https).
fn device_cookie(gatehouse: &Gatehouse, token: &SecretString) -> Cookie<'static> {
    let max_age = i64::try_from(gatehouse.device_token_ttl().as_secs()).unwrap_or(i64::MAX);
    Cookie::build(
        device_cookie_name(gatehouse),
        token.expose_secret().to_owned(),
    )
    .path("/login")
    .http_only(true)
    .secure(gatehouse.issuer().starts_with("https://"))
    .same_site(SameSite::Lax)
    .max_age(actix_web::cookie::time::Duration::seconds(max_age))
    .finish()
}

pub(super) async fn log_in(
    CsrfForm(form): CsrfForm<LoginForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let device = req.cookie(device_cookie_name(&gatehouse));
    let device_token = device.as_ref().map(Cookie::value);
    if let Err(e) = limits.login(&gatehouse, &form.email, device_token).await {
        let view = context! { email => form.email, client_name => client_name(&browser)? };
        return rerender(&pages, &browser, "login.html", e, "password", view);
    }
    match gatehouse
        .log_in_browser(&form.email, form.password, device_token, &meta)
        .await
    {
        Ok(login) => {
            browser.start_login(login.login.session_id)?;
            let mut response = see_other(browser.after_login()?);
            response
                .add_cookie(&device_cookie(&gatehouse, &login.device_token))
                .map_err(|e| PageError::from(gatehouse_core::Error::Internal(Box::new(e))))?;
            Ok(response)
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
