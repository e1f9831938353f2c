//! The browser side of OpenID Connect: the authorization endpoint (which sends the user
//! through login and consent and back to the app) and RP-initiated logout; the consent
//! page is with the other pages (`pages::consent`). The rules are in `gatehouse_core::oidc`; this only moves the browser.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_core::oidc::{AuthorizeStep, Progress};
use gatehouse_core::{Gatehouse, RequestMeta};
use serde::Deserialize;

use crate::browser::{BrowserSession, Pages, PendingAuthorization, PendingConsent, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;
use crate::routes::pages::signed_out;

/// Routes under `/oauth2`.
pub fn configure_oauth2(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/authorize")
            .route(web::get().to(authorize_get))
            .route(web::post().to(authorize_post)),
    )
    .service(continue_authorization)
    .service(
        web::resource("/logout")
            .route(web::get().to(end_session_get))
            .route(web::post().to(end_session_post)),
    );
}

async fn authorize_get(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    authorize(&gatehouse, &pages, &browser, &query).await
}

async fn authorize_post(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    authorize(&gatehouse, &pages, &browser, &form).await
}

async fn authorize(
    gatehouse: &Gatehouse,
    pages: &Pages,
    browser: &BrowserSession,
    params: &[(String, String)],
) -> Result<HttpResponse, PageError> {
    let step = gatehouse.authorize(params, browser.login()?).await?;
    next_step(pages, browser, step, Progress::default())
}

/// Where login and consent send the browser to resume the request they interrupted.
#[get("/authorize/continue")]
async fn continue_authorization(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
) -> Result<HttpResponse, PageError> {
    let Some(pending) = browser.pending_authorization()? else {
        return no_pending_request(&pages);
    };
    let progress = Progress {
        logged_in: pending.logged_in,
        consented: pending.consented,
    };
    let step = gatehouse
        .continue_authorization(&pending.request, browser.login()?, progress)
        .await?;
    next_step(&pages, &browser, step, progress)
}

pub(crate) fn no_pending_request(pages: &Pages) -> Result<HttpResponse, PageError> {
    pages.message(
        StatusCode::BAD_REQUEST,
        "Nothing to continue",
        "This sign-in has expired or was already completed. Go back to the application and start again.",
        None,
    )
}

pub(crate) fn next_step(
    pages: &Pages,
    browser: &BrowserSession,
    step: AuthorizeStep,
    progress: Progress,
) -> Result<HttpResponse, PageError> {
    match step {
        AuthorizeStep::Refuse { message } => {
            browser.clear_pending_authorization();
            pages.message(
                StatusCode::BAD_REQUEST,
                "This sign-in request cannot be used",
                &message,
                None,
            )
        }
        AuthorizeStep::Redirect(url) => {
            browser.clear_pending_authorization();
            Ok(see_other(&url))
        }
        AuthorizeStep::Login(request) => {
            browser.set_pending_authorization(&PendingAuthorization {
                request,
                logged_in: false,
                consented: progress.consented,
            })?;
            Ok(see_other("/login"))
        }
        AuthorizeStep::Consent { request, .. } => {
            browser.clear_pending_authorization();
            let login = browser.login()?.ok_or(PageError::LoginRequired)?;
            let id = browser.add_pending_consent(PendingConsent {
                request,
                login,
                logged_in: progress.logged_in,
            })?;
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("request", &id)
                .finish();
            Ok(see_other(&format!("/consent?{query}")))
        }
    }
}

#[derive(Deserialize)]
struct EndSessionParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

async fn end_session_get(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let params = web::Query::<EndSessionParams>::from_query(req.query_string())
        .map_err(|e| gatehouse_core::Error::InvalidInput {
            code: "invalid_logout_request",
            message: format!("The logout request is malformed: {e}."),
        })?
        .into_inner();
    end_session(&gatehouse, &pages, &browser, &meta, params).await
}

async fn end_session_post(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
    form: web::Form<EndSessionParams>,
) -> Result<HttpResponse, PageError> {
    end_session(&gatehouse, &pages, &browser, &meta, form.into_inner()).await
}

/// RP-initiated logout. With an `id_token_hint` of this browser's login the user is
/// logged out at once; otherwise they confirm on the logout page (a link alone must not
/// log anyone out).
async fn end_session(
    gatehouse: &Gatehouse,
    pages: &Pages,
    browser: &BrowserSession,
    meta: &RequestMeta,
    params: EndSessionParams,
) -> Result<HttpResponse, PageError> {
    let empty = |s: Option<String>| s.filter(|v| !v.is_empty());
    let request = gatehouse
        .check_logout_request(
            empty(params.id_token_hint).as_deref(),
            empty(params.client_id).as_deref(),
            empty(params.post_logout_redirect_uri).as_deref(),
            empty(params.state).as_deref(),
        )
        .await?;
    let Some(user) = browser.user().await? else {
        return signed_out(pages, browser, request.redirect.as_deref());
    };
    if request.hint_login == Some(user.session_id) {
        gatehouse.log_out_login(user.session_id, meta).await?;
        return signed_out(pages, browser, request.redirect.as_deref());
    }
    browser.set_pending_logout(&request)?;
    Ok(see_other("/logout"))
}
