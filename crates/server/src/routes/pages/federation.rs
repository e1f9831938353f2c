//! Signing in with an upstream provider: `/login/{id}` sends the browser there, and the
//! provider sends it back to `/login/{id}/callback`. The flow (state, PKCE verifier,
//! nonce) waits in the browser's server-side session and is used once. From the account
//! page a logged-in user links a provider (after step-up) or unlinks one.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_core::federation::{Callback, FederatedSignIn};
use gatehouse_core::{Error, Gatehouse};
use uuid::Uuid;

use super::account::{EmptyForm, logged_in};
use super::csrf::CsrfForm;
use super::login::{LINKED_NOTICE, device_cookie_name, finish};
use super::reauthenticate::ASK_FOR_ACCOUNT;
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;

/// The account page, saying that an identity was unlinked.
const UNLINKED_NOTICE: &str = "/account/sessions?unlinked=1";

/// Starts a sign-in at the provider.
#[get("/login/{provider}")]
pub(super) async fn start(
    gatehouse: web::Data<Gatehouse>,
    browser: BrowserSession,
    provider: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let (url, flow) = gatehouse.start_federated_sign_in(&provider, None).await?;
    browser.set_federation_flow(&flow)?;
    Ok(see_other(url.as_str()))
}

/// Links a provider to the logged-in account: a sign-in there whose identity is linked
/// instead of signing in. Needs a recent authentication.
pub(super) async fn link(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    browser: BrowserSession,
    provider: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    let started = gatehouse
        .start_federated_sign_in(&provider, Some(&user.principal()))
        .await;
    match started {
        Ok((url, flow)) => {
            browser.set_federation_flow(&flow)?;
            Ok(see_other(url.as_str()))
        }
        Err(Error::ReauthenticationRequired) => Ok(see_other(ASK_FOR_ACCOUNT)),
        Err(e) => Err(e.into()),
    }
}

/// Where the provider sends the browser back.
#[get("/login/{provider}/callback")]
pub(super) async fn callback(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    provider: web::Path<String>,
    query: web::Query<Callback>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let Some(flow) = browser.take_federation_flow()? else {
        return Err(Error::InvalidInput {
            code: "invalid_federation_state",
            message: "this browser started no sign-in, or used it already; start again from the login page"
                .to_owned(),
        }
        .into());
    };
    let current = browser.user().await?.map(|u| u.principal());
    let device = req.cookie(device_cookie_name(&gatehouse));
    let signed_in = gatehouse
        .finish_federated_sign_in(
            &provider,
            flow,
            query.into_inner(),
            current.as_ref(),
            device.as_ref().map(Cookie::value),
            &meta,
        )
        .await;
    match signed_in {
        Ok(FederatedSignIn::Login(login)) => {
            // A sign-in at a provider is no proof for an identity waiting for a password.
            browser.take_pending_link()?;
            finish(&gatehouse, &browser, login, &meta).await
        }
        Ok(FederatedSignIn::Linked { .. }) => Ok(see_other(LINKED_NOTICE)),
        Ok(FederatedSignIn::ProveAccount(pending)) => {
            browser.set_pending_link(&pending)?;
            Ok(see_other("/login"))
        }
        Err(Error::ReauthenticationRequired) => Ok(see_other(ASK_FOR_ACCOUNT)),
        Err(Error::EmailNotVerified) => pages.message(
            StatusCode::FORBIDDEN,
            "Verify your email address",
            "Your account is ready. We sent a link to your email address: open it to verify the address, then sign in again.",
            Some(("/login", "Back to the login page")),
        ),
        Err(e) => Err(e.into()),
    }
}

/// Unlinks an identity from the logged-in account (after step-up).
pub(super) async fn unlink(
    _: CsrfForm<EmptyForm>,
    gatehouse: web::Data<Gatehouse>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    identity: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    match gatehouse
        .unlink_identity(&user.principal(), identity.into_inner(), &meta)
        .await
    {
        Ok(()) => Ok(see_other(UNLINKED_NOTICE)),
        Err(Error::ReauthenticationRequired) => Ok(see_other(ASK_FOR_ACCOUNT)),
        Err(e) => Err(e.into()),
    }
}
