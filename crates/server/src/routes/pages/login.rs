//! The login page. After a login the browser goes back to the authorization request it
//! came with, or to the account page.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_core::sessions::login::BrowserPasswordLogin;
use gatehouse_core::{Gatehouse, RequestMeta};
use minijinja::context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::{empty_secret, rerender, show};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::rate_limit::RateLimits;

/// Where a login without an app to go back to ends.
const ACCOUNT_PAGE: &str = "/account/sessions";
/// The account page, saying that an upstream provider's identity was linked.
pub(super) const LINKED_NOTICE: &str = "/account/sessions?linked=1";

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
    let link = browser.pending_link()?;
    let email = query
        .email
        .clone()
        .or_else(|| link.as_ref().and_then(|l| l.identity.email.clone()))
        .or_else(|| pending.and_then(|p| p.request.login_hint));
    let notice = match (&link, &query.verified) {
        (Some(link), _) => Some(format!(
            "An account with this email address exists. Log in with its password to link your {} account to it.",
            link.provider_name
        )),
        (None, Some(_)) => Some("Your email address is verified. Log in to continue.".to_owned()),
        (None, None) => None,
    };
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
pub(super) fn device_cookie_name(gatehouse: &Gatehouse) -> &'static str {
    if gatehouse.issuer().starts_with("https://") {
        "__Secure-gatehouse_device"
    } else {
        "gatehouse_device"
    }
}

/// The device cookie: the browser's device token, sent back only to the login addresses
/// (`Path=/login`: the form, and the callbacks of upstream providers), never readable by
/// scripts, `Secure` in production (https).
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
    let login = gatehouse
        .log_in_browser(&form.email, form.password, device_token, &meta)
        .await;
    match login {
        Ok(login) => finish(&gatehouse, &browser, login, &meta).await,
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

/// Where a login step leads: into the account (or back to the app), with the device
/// cookie, or on to the second factor's page. A login that completes links the
/// identity of an upstream provider that waited for this account's password.
pub(super) async fn finish(
    gatehouse: &Gatehouse,
    browser: &BrowserSession,
    login: BrowserPasswordLogin,
    meta: &RequestMeta,
) -> Result<HttpResponse, PageError> {
    match login {
        BrowserPasswordLogin::Opened {
            login,
            device_token,
        } => {
            browser.clear_pending_mfa();
            browser.start_login(login.session_id)?;
            let mut next = browser.after_login()?;
            if let Some(pending) = browser.take_pending_link()?
                && gatehouse
                    .link_pending_identity(login.user_id, pending, meta)
                    .await?
                && next == ACCOUNT_PAGE
            {
                next = LINKED_NOTICE;
            }
            let mut response = see_other(next);
            response
                .add_cookie(&device_cookie(gatehouse, &device_token))
                .map_err(|e| PageError::from(gatehouse_core::Error::Internal(Box::new(e))))?;
            Ok(response)
        }
        BrowserPasswordLogin::MfaRequired { mfa_token } => {
            browser.set_pending_mfa(&mfa_token)?;
            Ok(see_other("/login/mfa"))
        }
    }
}

/// The second step of a login with two-factor authentication: a code of the
/// authenticator app, or a recovery code.
#[get("/login/mfa")]
pub(super) async fn mfa_page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    if browser.pending_mfa()?.is_none() {
        return Ok(see_other("/login"));
    }
    let view = context! { client_name => client_name(&browser)? };
    show(&pages, &browser, "login_mfa.html", view)
}

#[derive(Deserialize)]
pub(super) struct MfaForm {
    #[serde(default = "empty_secret")]
    code: SecretString,
}

pub(super) async fn log_in_mfa(
    CsrfForm(form): CsrfForm<MfaForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let Some(mfa_token) = browser.pending_mfa()? else {
        return Ok(see_other("/login"));
    };
    let device = req.cookie(device_cookie_name(&gatehouse));
    let device_token = device.as_ref().map(Cookie::value);
    let login = gatehouse
        .log_in_browser_second_factor(mfa_token, form.code, device_token, &meta)
        .await;
    match login {
        Ok(login) => finish(&gatehouse, &browser, login, &meta).await,
        Err(gatehouse_core::Error::InvalidOneTimeToken) => {
            // The step waited too long, or was finished in another tab: start again.
            browser.clear_pending_mfa();
            Ok(see_other("/login"))
        }
        Err(e) => {
            let view = context! { client_name => client_name(&browser)? };
            rerender(&pages, &browser, "login_mfa.html", e, "code", view)
        }
    }
}
