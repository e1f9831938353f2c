//! The account page: the user's sessions (end one, or all others) and the apps they
//! allowed (withdraw one).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::sessions::browser::BrowserUser;
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use super::csrf::CsrfForm;
use super::{Errors, readable, render};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;

#[get("/account/sessions")]
pub(super) async fn sessions_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let browser = BrowserSession::new(&session, &gatehouse);
    let user = browser.user().await?.ok_or(PageError::LoginRequired)?;
    let sessions = gatehouse.list_own_sessions(&user.principal()).await?;
    let apps = gatehouse.app_consents(user.user_id).await?;
    let view = context! {
        user_email => user.email,
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
    };
    render(
        &pages,
        &browser,
        StatusCode::OK,
        "sessions.html",
        Errors::new(),
        view,
    )
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub(super) struct EmptyForm {}

/// The logged-in user of this browser; the login page if none.
async fn logged_in(gatehouse: &Gatehouse, session: &Session) -> Result<BrowserUser, PageError> {
    BrowserSession::new(session, gatehouse)
        .user()
        .await?
        .ok_or(PageError::LoginRequired)
}

pub(super) async fn revoke_session(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&gatehouse, &session).await?;
    gatehouse
        .revoke_own_session(&user.principal(), path.into_inner(), &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}

pub(super) async fn revoke_other_sessions(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    session: Session,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&gatehouse, &session).await?;
    gatehouse
        .revoke_other_sessions(&user.principal(), &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}

pub(super) async fn withdraw_consent(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    session: Session,
    ClientMeta(meta): ClientMeta,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&gatehouse, &session).await?;
    gatehouse
        .withdraw_consent(&user.principal(), &path, &meta)
        .await?;
    Ok(see_other("/account/sessions"))
}
