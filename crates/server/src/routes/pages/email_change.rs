//! The pages behind the links of an email change: confirm the new address (the link mailed
//! to it) and undo a change (the link mailed to the old address). As with email
//! verification, the link fills the form and only posting it acts, so mail scanners that
//! open links use nothing up.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;

use super::csrf::CsrfForm;
use super::verify_email::{TokenForm, TokenQuery};
use super::{rerender, show};
use crate::browser::{BrowserSession, Pages};
use crate::error::PageError;
use crate::extract::ClientMeta;

#[get("/confirm-email")]
pub(super) async fn confirm_page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    let view = context! { token => query.token };
    show(&pages, &browser, "confirm_email.html", view)
}

pub(super) async fn confirm(
    CsrfForm(form): CsrfForm<TokenForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    match gatehouse
        .confirm_email_change(form.token.trim(), &meta)
        .await
    {
        Ok(()) => pages.message(
            StatusCode::OK,
            "Email address changed",
            "Your account now uses this address. Log in with it from now on.",
            Some(("/account/sessions", "Your account")),
        ),
        Err(e) => {
            let view = context! { token => form.token };
            rerender(&pages, &browser, "confirm_email.html", e, "form", view)
        }
    }
}

#[get("/undo-email-change")]
pub(super) async fn undo_page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    let view = context! { token => query.token };
    show(&pages, &browser, "undo_email_change.html", view)
}

pub(super) async fn undo(
    CsrfForm(form): CsrfForm<TokenForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    match gatehouse.undo_email_change(form.token.trim(), &meta).await {
        Ok(()) => pages.message(
            StatusCode::OK,
            "Email change undone",
            "Your account uses this address again and every session is signed out. \
             Check your email for a link to choose a new password.",
            None,
        ),
        Err(e) => {
            let view = context! { token => form.token };
            rerender(&pages, &browser, "undo_email_change.html", e, "form", view)
        }
    }
}
