//! The consent page. Its form names the authorization request it shows (see
//! [`crate::browser::PendingConsent`]): the answer applies to that request, once, and only
//! for the login that was shown the page.

use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::oidc::{self, Progress};
use gatehouse_core::sessions::browser::BrowserUser;
use minijinja::context;
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::show;
use crate::browser::{BrowserSession, Pages, PendingConsent};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::routes::authorize::{next_step, no_pending_request};

/// The identifier of the consent request a page is about.
#[derive(Deserialize)]
pub(super) struct ConsentQuery {
    request: Option<String>,
}

#[get("/consent")]
pub(super) async fn page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<ConsentQuery>,
) -> Result<HttpResponse, PageError> {
    let id = query.request.as_deref().unwrap_or_default();
    let Some((pending, user)) = for_this_login(&browser, browser.pending_consent(id)?).await?
    else {
        return no_pending_request(&pages);
    };
    let view = context! {
        request_id => id,
        client_name => pending.request.client_name,
        user_email => user.email,
        scopes => oidc::describe_scopes(&pending.request.scopes),
    };
    show(&pages, &browser, "consent.html", view)
}

/// A waiting consent request with the user it was shown to, if that user's login is
/// still this browser's.
async fn for_this_login(
    browser: &BrowserSession,
    pending: Option<PendingConsent>,
) -> Result<Option<(PendingConsent, BrowserUser)>, PageError> {
    let (Some(pending), Some(user)) = (pending, browser.user().await?) else {
        return Ok(None);
    };
    Ok((pending.login == user.session_id).then_some((pending, user)))
}

#[derive(Deserialize)]
pub(super) struct ConsentForm {
    #[serde(default)]
    request: String,
    decision: Option<String>,
}

/// The user's answer to one consent page.
pub(super) async fn answer(
    CsrfForm(form): CsrfForm<ConsentForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    let taken = browser.take_pending_consent(&form.request)?;
    let Some((pending, user)) = for_this_login(&browser, taken).await? else {
        return no_pending_request(&pages);
    };
    if form.decision.as_deref() != Some("allow") {
        let denied = "the user did not allow the request";
        let step = gatehouse.request_error(&pending.request, "access_denied", denied);
        return next_step(&pages, &browser, step, Progress::default());
    }
    gatehouse
        .grant_consent(user.user_id, &pending.request, &meta)
        .await?;
    let progress = pending.allowed();
    let step = gatehouse
        .continue_authorization(&pending.request, Some(user.session_id), progress)
        .await?;
    next_step(&pages, &browser, step, progress)
}
