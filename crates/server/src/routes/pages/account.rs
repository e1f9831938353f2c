//! The account page: the user's sessions (end one, or all others), the apps they
//! allowed (withdraw one), links to the email and two-factor pages, and deleting the
//! account (a page that asks first).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::SessionView;
use gatehouse_core::federation::IdentityView;
use gatehouse_core::oidc::AppConsent;
use gatehouse_core::sessions::browser::BrowserUser;
use minijinja::{Value, context};
use serde::Deserialize;
use uuid::Uuid;

use super::csrf::CsrfForm;
use super::{readable, rerender, show};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;

#[derive(Deserialize)]
pub(super) struct AccountQuery {
    linked: Option<String>,
    unlinked: Option<String>,
}

#[get("/account/sessions")]
pub(super) async fn sessions_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, PageError> {
    let user = browser.user().await?.ok_or(PageError::LoginRequired)?;
    let principal = user.principal();
    let sessions = gatehouse.list_own_sessions(&principal).await?;
    let apps = gatehouse.app_consents(user.user_id).await?;
    let identities = gatehouse.linked_identities(&principal).await?;
    let notice = match (&query.linked, &query.unlinked) {
        (Some(_), _) => Some("The provider is linked: you can sign in with it."),
        (None, Some(_)) => Some("The provider is unlinked: it no longer signs you in."),
        (None, None) => None,
    };
    let view = account_view(&user.email, sessions, apps, identities);
    show(
        &pages,
        &browser,
        "sessions.html",
        context! { notice, mfa => user.mfa_enabled, ..view },
    )
}

/// What the account page shows: the live sessions, the apps allowed and the linked
/// providers.
fn account_view(
    email: &str,
    sessions: Vec<SessionView>,
    apps: Vec<AppConsent>,
    identities: Vec<IdentityView>,
) -> Value {
    context! {
        user_email => email,
        identities => identities.into_iter().map(|i| context! {
            id => i.id.to_string(),
            provider => i.provider,
            provider_name => i.provider_name,
            email => i.email,
            linked_at => readable(i.linked_at),
        }).collect::<Vec<_>>(),
        sessions => sessions.into_iter().map(|s| context! {
            id => s.id.to_string(),
            created_at => readable(s.created_at),
            last_seen_at => readable(s.last_seen_at),
            ip => s.ip,
            user_agent => s.user_agent,
            current => s.current,
        }).collect::<Vec<_>>(),
        apps => apps.into_iter().map(|a| context! {
            client_id => a.client_id,
            client_name => a.client_name,
            scopes => a.scope,
            granted_at => readable(a.granted_at),
        }).collect::<Vec<_>>(),
    }
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub(super) struct EmptyForm {}

/// The logged-in user of this browser; the login page if none.
pub(super) async fn logged_in(browser: &BrowserSession) -> Result<BrowserUser, PageError> {
    browser.user().await?.ok_or(PageError::LoginRequired)
}

pub(super) async fn revoke_session(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    gatehouse
        .revoke_own_session(&user.principal(), path.into_inner(), &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}

pub(super) async fn revoke_other_sessions(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    gatehouse
        .revoke_other_sessions(&user.principal(), &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}

pub(super) async fn withdraw_consent(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    gatehouse
        .withdraw_consent(&user.principal(), &path, &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}

#[get("/account/delete")]
pub(super) async fn delete_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    if !gatehouse.session_is_fresh(&user.principal()).await? {
        return Ok(see_other(super::reauthenticate::ASK_FOR_DELETION));
    }
    let view = context! { user_email => user.email };
    show(&pages, &browser, "delete_account.html", view)
}

pub(super) async fn delete_account(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    match gatehouse.delete_account(&user.principal(), &meta).await {
        Ok(()) => {
            browser.end();
            pages.message(
                StatusCode::OK,
                "Account deleted",
                "Your account is deleted and you are signed out everywhere.",
                None,
            )
        }
        Err(gatehouse_core::Error::ReauthenticationRequired) => {
            Ok(see_other(super::reauthenticate::ASK_FOR_DELETION))
        }
        Err(e) => {
            let view = context! { user_email => user.email };
            rerender(&pages, &browser, "delete_account.html", e, "form", view)
        }
    }
}
