//! An admin's impersonation in a browser: the one-time link the impersonation answered
//! (`/impersonate?token=`) fills a form, and posting it puts the impersonated session on
//! this browser, under a banner on every page rendered with the browser's state (see
//! `layout.html` and `render`). As with the mailed
//! links, opening the link uses nothing up.

use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;
use secrecy::SecretString;

use super::csrf::CsrfForm;
use super::verify_email::{TokenForm, TokenQuery};
use super::{readable, rerender, show};
use crate::browser::{BrowserSession, ImpersonationBanner, Pages, see_other};
use crate::error::PageError;

#[get("/impersonate")]
pub(super) async fn page(
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    let view = context! { token => query.token };
    show(&pages, &browser, "impersonate.html", view)
}

pub(super) async fn open(
    CsrfForm(form): CsrfForm<TokenForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    let token = SecretString::from(form.token.trim().to_owned());
    match gatehouse.open_impersonation_link(&token).await {
        Ok(opened) => {
            let banner = ImpersonationBanner {
                user_email: opened.user_email,
                ends_at: readable(opened.expires_at),
            };
            browser.start_impersonation(opened.session_id, &banner)?;
            Ok(see_other("/account/sessions"))
        }
        Err(e) => {
            let view = context! { token => form.token };
            rerender(&pages, &browser, "impersonate.html", e, "form", view)
        }
    }
}
