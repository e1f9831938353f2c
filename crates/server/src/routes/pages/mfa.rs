//! Two-factor authentication on the account pages: set up an authenticator app (a QR code
//! and the secret in text, then a first code), see the recovery codes once, make a new
//! set, or turn it off. Every step is a sensitive action: a login older than
//! `auth.fresh_age` is sent to prove itself again, then comes back here.

use actix_web::{HttpResponse, get, web};
use base64::Engine;
use gatehouse_core::accounts::mfa::RecoveryCodesView;
use gatehouse_core::rate_limit::RateClass;
use gatehouse_core::{Error, Gatehouse};
use minijinja::context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::account::{EmptyForm, logged_in};
use super::csrf::CsrfForm;
use super::reauthenticate::ASK_FOR_MFA;
use super::{empty_secret, rerender, show};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::rate_limit::RateLimits;

/// The two-factor page, saying that it was turned off.
const REMOVED_NOTICE: &str = "/account/mfa?removed=1";
/// The two-factor page after a confirmation that found it on already (the same form sent
/// twice: the first answer, with the codes, never showed).
const ALREADY_ON_NOTICE: &str = "/account/mfa?already_on=1";

#[derive(Deserialize)]
pub(super) struct MfaQuery {
    removed: Option<String>,
    already_on: Option<String>,
}

/// Whether `error` is the conflict `code`.
fn is_conflict(error: &Error, code: &str) -> bool {
    matches!(error, Error::Conflict { code: c, .. } if *c == code)
}

#[get("/account/mfa")]
pub(super) async fn page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<MfaQuery>,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    if !gatehouse.session_is_fresh(&user.principal()).await? {
        return Ok(see_other(ASK_FOR_MFA));
    }
    let notice = match (&query.removed, &query.already_on) {
        (Some(_), _) => Some("Two-factor authentication is off: your password alone signs you in."),
        (None, Some(_)) => Some(
            "Two-factor authentication is on. If you did not see your recovery codes, make a new set now.",
        ),
        (None, None) => None,
    };
    let view = context! { user_email => user.email, mfa => user.mfa_enabled, notice };
    show(&pages, &browser, "mfa.html", view)
}

/// Starts an enrolment: the page with the QR code, the secret and the field for a first
/// code. Starting again replaces the secret.
pub(super) async fn start(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    let enrolment = match gatehouse.start_totp_enrolment(&user.principal()).await {
        Ok(enrolment) => enrolment,
        Err(Error::ReauthenticationRequired) => return Ok(see_other(ASK_FOR_MFA)),
        Err(e) => return Err(e.into()),
    };
    // An image, not inline markup: the page's policy allows `data:` images and no more.
    let qr = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(enrolment.qr_svg)
    );
    let view = context! { qr, secret => enrolment.secret };
    show(&pages, &browser, "mfa_enrol.html", view)
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    #[serde(default = "empty_secret")]
    code: SecretString,
}

/// Finishes an enrolment with a first code: the recovery codes, shown this once. A
/// wrong code is asked again (the app keeps the secret; the page does not show it twice).
pub(super) async fn confirm(
    CsrfForm(form): CsrfForm<CodeForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    let principal = user.principal();
    let confirmed = async {
        limits
            .account(RateClass::Login, &principal.user_id.to_string())
            .await?;
        gatehouse
            .confirm_totp(&principal, form.code.expose_secret().trim(), &meta)
            .await
    }
    .await;
    match confirmed {
        Ok(codes) => recovery_codes(&pages, &browser, codes, true),
        Err(Error::ReauthenticationRequired) => Ok(see_other(ASK_FOR_MFA)),
        Err(e) if is_conflict(&e, "mfa_already_enabled") => Ok(see_other(ALREADY_ON_NOTICE)),
        Err(e) => rerender(&pages, &browser, "mfa_enrol.html", e, "code", context! {}),
    }
}

/// A new set of recovery codes; the old ones stop working.
pub(super) async fn regenerate(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    match gatehouse
        .regenerate_recovery_codes(&user.principal(), &meta)
        .await
    {
        Ok(codes) => recovery_codes(&pages, &browser, codes, false),
        Err(Error::ReauthenticationRequired) => Ok(see_other(ASK_FOR_MFA)),
        Err(e) => Err(e.into()),
    }
}

/// Turns two-factor authentication off.
pub(super) async fn remove(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    match gatehouse.remove_totp(&user.principal(), &meta).await {
        // Sent twice, the second finds it off already: the same answer.
        Ok(()) => Ok(see_other(REMOVED_NOTICE)),
        Err(e) if is_conflict(&e, "mfa_not_enabled") => Ok(see_other(REMOVED_NOTICE)),
        Err(Error::ReauthenticationRequired) => Ok(see_other(ASK_FOR_MFA)),
        Err(e) => Err(e.into()),
    }
}

/// The page that shows recovery codes, this once (`no-store`, as every page).
fn recovery_codes(
    pages: &Pages,
    browser: &BrowserSession,
    codes: RecoveryCodesView,
    enrolled: bool,
) -> Result<HttpResponse, PageError> {
    let view = context! { codes => codes.recovery_codes, enrolled };
    show(pages, browser, "recovery_codes.html", view)
}
