//! The pages of an email change: ask for one from the account (a sensitive action: a
//! login older than `auth.fresh_age` proves itself again first), confirm the new address
//! (the link mailed to it) and undo a change (the link mailed to the old address). As
//! with email verification, a link fills the form and only posting it acts, so mail
//! scanners that open links use nothing up.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use gatehouse_core::rate_limit::RateClass;
use gatehouse_core::{Error, Gatehouse};
use minijinja::context;
use serde::Deserialize;

use super::account::logged_in;
use super::csrf::CsrfForm;
use super::reauthenticate::ASK_FOR_EMAIL_CHANGE;
use super::verify_email::{TokenForm, TokenQuery};
use super::{rerender, show};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::rate_limit::RateLimits;

#[get("/account/email")]
pub(super) async fn change_page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    if !gatehouse.session_is_fresh(&user.principal()).await? {
        return Ok(see_other(ASK_FOR_EMAIL_CHANGE));
    }
    let view = context! { user_email => user.email };
    show(&pages, &browser, "change_email.html", view)
}

#[derive(Deserialize)]
pub(super) struct ChangeForm {
    #[serde(default)]
    email: String,
}

/// Asks for the change: a confirmation link to the new address, a notice to the old
/// one. The answer is the same whether or not another account has the address.
pub(super) async fn change(
    CsrfForm(form): CsrfForm<ChangeForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    limits: RateLimits,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    let requested = async {
        limits.email(RateClass::Mail, &form.email).await?;
        gatehouse
            .request_email_change(&user.principal(), &form.email, &meta)
            .await
    }
    .await;
    match requested {
        Ok(_receipt) => pages.message(
            StatusCode::ACCEPTED,
            "Check your inbox",
            "We sent a link to the new address. Your account changes to it when you open the link; until then it keeps the address it has.",
            Some(("/account/sessions", "Back to your account")),
        ),
        Err(Error::ReauthenticationRequired) => Ok(see_other(ASK_FOR_EMAIL_CHANGE)),
        Err(e) => {
            let view = context! { user_email => user.email, email => form.email };
            rerender(&pages, &browser, "change_email.html", e, "form", view)
        }
    }
}

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
