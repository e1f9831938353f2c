//! Step-up on the hosted pages: before a sensitive action (changing the email address
//! or two-factor authentication, linking or unlinking a provider, deleting the account) a
//! browser whose login is older than `auth.fresh_age` proves itself again with its
//! password (and a code when the account has two-factor authentication), then goes back
//! to the action. `next` only ever leads to an account page of this server.

use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use minijinja::context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::account::logged_in;
use super::csrf::CsrfForm;
use super::{empty_secret, rerender, show};
use crate::browser::{BrowserSession, Pages, see_other};
use crate::error::PageError;
use crate::extract::ClientMeta;

/// Where a browser goes to prove itself again before deleting its account.
pub(super) const ASK_FOR_DELETION: &str = "/reauthenticate?next=/account/delete";
/// The same, for an action of the account page (linking or unlinking a provider).
pub(super) const ASK_FOR_ACCOUNT: &str = "/reauthenticate?next=/account/sessions";
/// The same, before changing the account's email address.
pub(super) const ASK_FOR_EMAIL_CHANGE: &str = "/reauthenticate?next=/account/email";
/// The same, before any change to two-factor authentication.
pub(super) const ASK_FOR_MFA: &str = "/reauthenticate?next=/account/mfa";

/// `next` if it is a path of the account pages of this server, else the account page:
/// never another host, scheme or path (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with("/account/")
                && !path.contains("//")
                && !path.contains('\\')
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path
        }
        _ => "/account/sessions",
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// The page asks for the password (and a code), or, for an account without a password,
/// offers its linked providers: a new sign-in there is a fresh login.
#[get("/reauthenticate")]
pub(super) async fn page(
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    let identities = if user.has_password {
        Vec::new()
    } else {
        gatehouse.linked_identities(&user.principal()).await?
    };
    let view = context! {
        user_email => user.email,
        mfa => user.mfa_enabled,
        has_password => user.has_password,
        identities => identities.into_iter().map(|i| context! {
            provider => i.provider,
            provider_name => i.provider_name,
        }).collect::<Vec<_>>(),
        next => safe_next(query.next.as_deref()),
    };
    show(&pages, &browser, "reauthenticate.html", view)
}

#[derive(Deserialize)]
pub(super) struct ReauthenticateForm {
    #[serde(default = "empty_secret")]
    password: SecretString,
    #[serde(default = "empty_secret")]
    code: SecretString,
    next: Option<String>,
}

pub(super) async fn reauthenticate(
    CsrfForm(form): CsrfForm<ReauthenticateForm>,
    gatehouse: web::Data<Gatehouse>,
    pages: web::Data<Pages>,
    browser: BrowserSession,
    ClientMeta(meta): ClientMeta,
) -> Result<HttpResponse, PageError> {
    let user = logged_in(&browser).await?;
    let next = safe_next(form.next.as_deref()).to_owned();
    let code = Some(form.code).filter(|c| !c.expose_secret().trim().is_empty());
    match gatehouse
        .reauthenticate(&user.principal(), form.password, code, &meta)
        .await
    {
        Ok(()) => Ok(see_other(&next)),
        Err(e) => {
            let view = context! {
                user_email => user.email,
                mfa => user.mfa_enabled,
                has_password => user.has_password,
                next,
            };
            rerender(&pages, &browser, "reauthenticate.html", e, "password", view)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_the_account_pages() {
        assert_eq!(safe_next(Some("/account/delete")), "/account/delete");
        for hostile in [
            "https://evil.example/",
            "//evil.example/account/",
            "/account//evil",
            "/account/\\evil",
            "/login",
            "/account/ x",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/account/sessions", "{hostile}");
        }
        assert_eq!(safe_next(None), "/account/sessions");
    }
}
