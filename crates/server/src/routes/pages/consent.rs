//! The consent page. Its form names the authorization request it shows (see
//! [`crate::browser::PendingConsent`]): the answer applies to that request, once, and only
//! for the login that was shown the page.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::oidc::{self, Progress};
use minijinja::context;
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::{Errors, render};
use crate::browser::BrowserSession;
use crate::browser::Pages;
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
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
    query: web::Query<ConsentQuery>,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    let id = query.request.as_deref().unwrap_or_default();
    let (Some(pending), Some(user)) = (browser.pending_consent(id)?, browser.user().await?) else {
        return no_pending_request(&pages);
    };
    if pending.login != user.session_id {
        return no_pending_request(&pages);
    }
    let view = context! {
        request_id => id,
        client_name => pending.request.client_name,
        user_email => user.email,
        scopes => oidc::describe_scopes(&pending.request.scopes),
    };
    render(
        &pages,
        &browser,
        StatusCode::OK,
        "consent.html",
        Errors::new(),
        view,
    )
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
    session: Session,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    let pending = browser.take_pending_consent(&form.request)?;
    let (Some(pending), Some(user)) = (pending, browser.user().await?) else {
        return no_pending_request(&pages);
    };
    if pending.login != user.session_id {
        return no_pending_request(&pages);
    }
    if form.decision.as_deref() != Some("allow") {
        let step = gatehouse.request_error(
            &pending.request,
            "access_denied",
            "the user did not allow the request",
        );
        return next_step(&pages, &browser, step, Progress::default());
    }
    gatehouse
        .grant_consent(user.user_id, &pending.request, &meta)
        .await?;
    let progress = Progress {
        logged_in: pending.logged_in,
        consented: true,
    };
    let step = gatehouse
        .continue_authorization(&pending.request, Some(user.session_id), progress)
        .await?;
    next_step(&pages, &browser, step, progress)
}
