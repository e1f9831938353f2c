//! What the hosted pages share: the session cookie (actix-session, stored through
//! `gatehouse-core` in the database and tied to the login session), CSRF tokens, and
//! the templates with the configured branding.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use actix_session::config::{PersistentSession, TtlExtensionPolicy};
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_session::{Session, SessionExt, SessionMiddleware};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::federation::{FederationFlow, PendingLink, ProviderButton};
use gatehouse_core::oidc::{AuthorizationRequest, LogoutRequest, Progress};
use gatehouse_core::platform::secrets::{constant_time_eq, new_token, token_hash};
use gatehouse_core::sessions::browser::{BrowserState, BrowserUser, LOGIN_SESSION_KEY};
use minijinja::{Environment, Value, context};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::PageSettings;
use crate::error::PageError;

/// The session store of the hosted pages: rows in `browser_sessions`, through the core.
#[derive(Clone)]
pub struct DatabaseSessionStore {
    gatehouse: Gatehouse,
    idle_timeout: Duration,
}

fn other(e: gatehouse_core::Error) -> anyhow::Error {
    anyhow::Error::new(e)
}

/// On a failure (the database unavailable, or anything else), the store answers as if
/// all went well and marks the request instead, so that `error::session_store_failures`
/// replaces the whole answer (cookie included) with the 503 (or 500) every other request
/// gets then; actix-session would otherwise answer a bare, bodyless 500.
fn absorbed(e: &gatehouse_core::Error) -> bool {
    crate::error::absorb_session_store_failure(e)
}

impl SessionStore for DatabaseSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<BrowserState>, LoadError> {
        match self.gatehouse.load_browser_session(key.as_ref()).await {
            Err(e) if absorbed(&e) => Ok(None),
            loaded => loaded.map_err(|e| LoadError::Other(other(e))),
        }
    }

    async fn save(
        &self,
        state: BrowserState,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, SaveError> {
        let key = match self
            .gatehouse
            .create_browser_session(&state, self.idle_timeout)
            .await
        {
            Err(e) if absorbed(&e) => {
                // Never sent: the answer is replaced by the 503.
                return SessionKey::try_from("database-unreachable".to_owned())
                    .map_err(|e| SaveError::Other(anyhow::anyhow!("{e}")));
            }
            created => created.map_err(|e| SaveError::Other(other(e)))?,
        };
        SessionKey::try_from(key.expose_secret().to_owned())
            .map_err(|e| SaveError::Other(anyhow::anyhow!("{e}")))
    }

    async fn update(
        &self,
        key: SessionKey,
        state: BrowserState,
        ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        let updated = match self
            .gatehouse
            .update_browser_session(key.as_ref(), &state, self.idle_timeout)
            .await
        {
            Err(e) if absorbed(&e) => return Ok(key),
            updated => updated.map_err(|e| UpdateError::Other(other(e)))?,
        };
        if updated {
            return Ok(key);
        }
        self.save(state, ttl).await.map_err(|e| match e {
            SaveError::Serialization(e) => UpdateError::Serialization(e),
            SaveError::Other(e) => UpdateError::Other(e),
        })
    }

    async fn update_ttl(
        &self,
        key: &SessionKey,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<(), anyhow::Error> {
        match self
            .gatehouse
            .touch_browser_session(key.as_ref(), self.idle_timeout)
            .await
        {
            Err(e) if absorbed(&e) => Ok(()),
            touched => touched.map_err(other),
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        match self.gatehouse.delete_browser_session(key.as_ref()).await {
            Err(e) if absorbed(&e) => Ok(()),
            deleted => deleted.map_err(other),
        }
    }
}

/// The session middleware: an `HttpOnly`, `SameSite=Lax` cookie, `Secure` with the
/// `__Host-` prefix when the issuer is https; it expires after the idle timeout, moved
/// forward on every request.
pub fn session_middleware(
    gatehouse: Gatehouse,
    idle_timeout: Duration,
    signing_key: &[u8; 64],
) -> SessionMiddleware<DatabaseSessionStore> {
    let https = gatehouse.issuer().starts_with("https://");
    let store = DatabaseSessionStore {
        gatehouse,
        idle_timeout,
    };
    let ttl = actix_web::cookie::time::Duration::seconds(
        i64::try_from(idle_timeout.as_secs()).unwrap_or(i64::MAX),
    );
    SessionMiddleware::builder(store, Key::from(signing_key))
        .cookie_name(
            if https {
                "__Host-gatehouse"
            } else {
                "gatehouse"
            }
            .to_owned(),
        )
        .cookie_secure(https)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned())
        .cookie_domain(None)
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(ttl)
                .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
        )
        .build()
}

const CSRF_SEED_KEY: &str = "csrf_seed";
const PENDING_AUTHORIZATION_KEY: &str = "authorize";
const PENDING_CONSENTS_KEY: &str = "consents";
const PENDING_LOGOUT_KEY: &str = "logout";
const PENDING_MFA_KEY: &str = "mfa";
const FEDERATION_FLOW_KEY: &str = "federation_flow";
const PENDING_LINK_KEY: &str = "federation_link";
const IMPERSONATION_KEY: &str = "impersonation";

/// What the banner of an impersonated login says: whose account this is, and until when.
/// Kept beside the login it describes, and gone with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImpersonationBanner {
    pub user_email: String,
    pub ends_at: String,
}

/// How many consent pages one browser may have open at once (tabs); opening another
/// forgets the oldest, whose form then answers "nothing to continue".
pub const MAX_PENDING_CONSENTS: usize = 8;

/// An authorization request waiting for the user to log in or consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub request: AuthorizationRequest,
    pub logged_in: bool,
    pub consented: bool,
}

/// An authorization request shown on a consent page, waiting for the user's answer. The
/// page's form names it by an unguessable identifier, so the answer applies to the
/// request the user saw and no other (not to one a second tab, or another site sending
/// the browser to `/oauth2/authorize`, started since).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingConsent {
    pub request: AuthorizationRequest,
    /// The login that was shown the page; another login cannot answer it.
    pub login: Uuid,
    /// The user entered their password for this request.
    pub logged_in: bool,
}

impl PendingConsent {
    /// Where the request stands once the user allowed it.
    pub fn allowed(&self) -> Progress {
        Progress {
            logged_in: self.logged_in,
            consented: true,
        }
    }
}

/// Pending consents under the SHA-256 of their identifiers, oldest first.
type PendingConsents = Vec<(String, PendingConsent)>;

fn session_error(e: impl std::fmt::Display) -> PageError {
    PageError::Session(e.to_string())
}

/// Typed access to the browser session's entries; an extractor, so a page handler takes
/// it as it is.
pub struct BrowserSession {
    session: Session,
    gatehouse: web::Data<Gatehouse>,
}

impl FromRequest for BrowserSession {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let gatehouse = req.app_data::<web::Data<Gatehouse>>().cloned();
        std::future::ready(match gatehouse {
            Some(gatehouse) => Ok(BrowserSession::new(req.get_session(), gatehouse)),
            None => Err(PageError::Core(gatehouse_core::Error::Internal(
                "Gatehouse is not registered".into(),
            ))),
        })
    }
}

impl BrowserSession {
    pub fn new(session: Session, gatehouse: web::Data<Gatehouse>) -> Self {
        Self { session, gatehouse }
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, PageError> {
        self.session.get(key).map_err(session_error)
    }

    fn set<T: Serialize>(&self, key: &str, value: &T) -> Result<(), PageError> {
        self.session.insert(key, value).map_err(session_error)
    }

    /// The CSRF token of this browser session. The session's state holds only a random
    /// seed, made on first use; the token is an HMAC of it under a key derived from the
    /// master key, so someone who reads the database cannot forge a form.
    pub fn csrf_token(&self) -> Result<String, PageError> {
        if let Some(seed) = self.get::<String>(CSRF_SEED_KEY)? {
            return Ok(self.gatehouse.csrf_token(&seed));
        }
        let (seed, _) = new_token().map_err(PageError::Core)?;
        let seed = seed.expose_secret().to_owned();
        self.set(CSRF_SEED_KEY, &seed)?;
        Ok(self.gatehouse.csrf_token(&seed))
    }

    /// Refuses a form without the session's CSRF token (compared in constant time).
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), PageError> {
        let expected = self
            .get::<String>(CSRF_SEED_KEY)?
            .map(|seed| self.gatehouse.csrf_token(&seed));
        match (expected, presented) {
            (Some(expected), Some(presented))
                if constant_time_eq(expected.as_bytes(), presented.as_bytes()) =>
            {
                Ok(())
            }
            _ => Err(PageError::Csrf),
        }
    }

    /// The login session of this browser, if any (still to be checked as live).
    pub fn login(&self) -> Result<Option<Uuid>, PageError> {
        self.get(LOGIN_SESSION_KEY)
    }

    /// The user logged in on this browser, if their login still stands.
    pub async fn user(&self) -> Result<Option<BrowserUser>, PageError> {
        match self.login()? {
            Some(login) => Ok(self.gatehouse.login_user(login).await?),
            None => Ok(None),
        }
    }

    /// Starts a login: a new cookie key (no fixation) and a new CSRF token.
    pub fn start_login(&self, login: Uuid) -> Result<(), PageError> {
        self.session.renew();
        self.session.remove(CSRF_SEED_KEY);
        self.session.remove(IMPERSONATION_KEY);
        self.set(LOGIN_SESSION_KEY, &login)
    }

    /// Starts an admin's impersonated login: as [`Self::start_login`], and every page
    /// shows `banner` until the login ends.
    pub fn start_impersonation(
        &self,
        login: Uuid,
        banner: &ImpersonationBanner,
    ) -> Result<(), PageError> {
        self.start_login(login)?;
        self.set(IMPERSONATION_KEY, banner)
    }

    /// The banner of this browser's login, when it is an impersonation.
    pub fn impersonation(&self) -> Result<Option<ImpersonationBanner>, PageError> {
        if self.login()?.is_none() {
            return Ok(None);
        }
        self.get(IMPERSONATION_KEY)
    }

    /// Where a new login goes: back to the authorization request it interrupted (now
    /// marked as logged in for), else the account page.
    pub fn after_login(&self) -> Result<&'static str, PageError> {
        match self.pending_authorization()? {
            Some(mut pending) => {
                pending.logged_in = true;
                self.set_pending_authorization(&pending)?;
                Ok("/oauth2/authorize/continue")
            }
            None => Ok("/account/sessions"),
        }
    }

    /// Forgets everything, and expires the cookie.
    pub fn end(&self) {
        self.session.purge();
    }

    /// Keeps the MFA token of a login whose password was accepted, for its second step
    /// (the session state lives on the server: the browser holds only the cookie key).
    pub fn set_pending_mfa(&self, mfa_token: &SecretString) -> Result<(), PageError> {
        self.set(PENDING_MFA_KEY, &mfa_token.expose_secret().to_owned())
    }

    /// The MFA token of a login waiting for its second factor, if any.
    pub fn pending_mfa(&self) -> Result<Option<SecretString>, PageError> {
        Ok(self.get::<String>(PENDING_MFA_KEY)?.map(SecretString::from))
    }

    pub fn clear_pending_mfa(&self) {
        self.remove(PENDING_MFA_KEY);
    }

    /// Keeps the sign-in started at an upstream provider until its callback (one at a
    /// time: a new one replaces it).
    pub fn set_federation_flow(&self, flow: &FederationFlow) -> Result<(), PageError> {
        self.set(FEDERATION_FLOW_KEY, flow)
    }

    /// Removes and returns the sign-in waiting for its callback: each is used once.
    pub fn take_federation_flow(&self) -> Result<Option<FederationFlow>, PageError> {
        let flow = self.get(FEDERATION_FLOW_KEY)?;
        self.remove(FEDERATION_FLOW_KEY);
        Ok(flow)
    }

    /// Keeps an identity waiting for its account's password.
    pub fn set_pending_link(&self, pending: &PendingLink) -> Result<(), PageError> {
        self.set(PENDING_LINK_KEY, pending)
    }

    pub fn pending_link(&self) -> Result<Option<PendingLink>, PageError> {
        self.get(PENDING_LINK_KEY)
    }

    /// Removes and returns the identity waiting for its account's password.
    pub fn take_pending_link(&self) -> Result<Option<PendingLink>, PageError> {
        let pending = self.pending_link()?;
        self.remove(PENDING_LINK_KEY);
        Ok(pending)
    }

    pub fn pending_authorization(&self) -> Result<Option<PendingAuthorization>, PageError> {
        self.get(PENDING_AUTHORIZATION_KEY)
    }

    pub fn set_pending_authorization(
        &self,
        pending: &PendingAuthorization,
    ) -> Result<(), PageError> {
        self.set(PENDING_AUTHORIZATION_KEY, pending)
    }

    pub fn clear_pending_authorization(&self) {
        self.remove(PENDING_AUTHORIZATION_KEY);
    }

    /// Removes an entry; the session is only written back if there was one.
    fn remove(&self, key: &str) {
        if self.session.entries().contains_key(key) {
            self.session.remove(key);
        }
    }

    /// Keeps a request for its consent page; returns the identifier the page's form
    /// carries. Only its hash is stored.
    pub fn add_pending_consent(&self, pending: PendingConsent) -> Result<String, PageError> {
        let mut consents: PendingConsents = self.get(PENDING_CONSENTS_KEY)?.unwrap_or_default();
        let (id, id_hash) = new_token().map_err(PageError::Core)?;
        consents.push((id_hash, pending));
        let excess = consents.len().saturating_sub(MAX_PENDING_CONSENTS);
        consents.drain(..excess);
        self.set(PENDING_CONSENTS_KEY, &consents)?;
        Ok(id.expose_secret().to_owned())
    }

    /// The request a consent page shows, if it is still waiting.
    pub fn pending_consent(&self, id: &str) -> Result<Option<PendingConsent>, PageError> {
        let (mut consents, index) = self.find_pending_consent(id)?;
        Ok(index.map(|i| consents.swap_remove(i).1))
    }

    /// Removes and returns a waiting request: each consent page is answered once.
    pub fn take_pending_consent(&self, id: &str) -> Result<Option<PendingConsent>, PageError> {
        let (mut consents, index) = self.find_pending_consent(id)?;
        let Some(index) = index else {
            return Ok(None);
        };
        let (_, pending) = consents.remove(index);
        self.set(PENDING_CONSENTS_KEY, &consents)?;
        Ok(Some(pending))
    }

    /// The pending consents, and where the one `id` names is (compared in constant time).
    fn find_pending_consent(
        &self,
        id: &str,
    ) -> Result<(PendingConsents, Option<usize>), PageError> {
        let consents: PendingConsents = self.get(PENDING_CONSENTS_KEY)?.unwrap_or_default();
        let id_hash = token_hash(id);
        let index = consents
            .iter()
            .position(|(stored, _)| constant_time_eq(stored.as_bytes(), id_hash.as_bytes()));
        Ok((consents, index))
    }

    pub fn pending_logout(&self) -> Result<Option<LogoutRequest>, PageError> {
        self.get(PENDING_LOGOUT_KEY)
    }

    pub fn set_pending_logout(&self, logout: &LogoutRequest) -> Result<(), PageError> {
        self.set(PENDING_LOGOUT_KEY, logout)
    }
}

/// The built-in templates, by file name.
const TEMPLATES: [(&str, &str); 22] = [
    (
        "layout.html",
        include_str!("../templates/pages/layout.html"),
    ),
    (
        "fields.html",
        include_str!("../templates/pages/fields.html"),
    ),
    ("home.html", include_str!("../templates/pages/home.html")),
    ("login.html", include_str!("../templates/pages/login.html")),
    (
        "reauthenticate.html",
        include_str!("../templates/pages/reauthenticate.html"),
    ),
    (
        "login_mfa.html",
        include_str!("../templates/pages/login_mfa.html"),
    ),
    (
        "signup.html",
        include_str!("../templates/pages/signup.html"),
    ),
    (
        "verify_email.html",
        include_str!("../templates/pages/verify_email.html"),
    ),
    (
        "forgot_password.html",
        include_str!("../templates/pages/forgot_password.html"),
    ),
    (
        "reset_password.html",
        include_str!("../templates/pages/reset_password.html"),
    ),
    (
        "consent.html",
        include_str!("../templates/pages/consent.html"),
    ),
    (
        "sessions.html",
        include_str!("../templates/pages/sessions.html"),
    ),
    (
        "logout.html",
        include_str!("../templates/pages/logout.html"),
    ),
    (
        "message.html",
        include_str!("../templates/pages/message.html"),
    ),
    (
        "confirm_email.html",
        include_str!("../templates/pages/confirm_email.html"),
    ),
    (
        "undo_email_change.html",
        include_str!("../templates/pages/undo_email_change.html"),
    ),
    (
        "delete_account.html",
        include_str!("../templates/pages/delete_account.html"),
    ),
    (
        "impersonate.html",
        include_str!("../templates/pages/impersonate.html"),
    ),
    (
        "change_email.html",
        include_str!("../templates/pages/change_email.html"),
    ),
    ("mfa.html", include_str!("../templates/pages/mfa.html")),
    (
        "mfa_enrol.html",
        include_str!("../templates/pages/mfa_enrol.html"),
    ),
    (
        "recovery_codes.html",
        include_str!("../templates/pages/recovery_codes.html"),
    ),
];

const STYLESHEET: &str = include_str!("../assets/gatehouse.css");

/// The hosted pages' templates and branding.
pub struct Pages {
    env: Environment<'static>,
    brand: Value,
    /// The buttons of the upstream providers (`[[federation.providers]]`), on every page
    /// as `providers` (the login and sign-up pages show them).
    providers: Value,
    stylesheet: String,
}

impl Pages {
    /// Loads the templates: a file of the same name in `pages.templates_dir` overrides a
    /// built-in one.
    pub fn new(settings: &PageSettings, providers: Vec<ProviderButton>) -> Self {
        let mut env = Environment::new();
        let overrides: Option<PathBuf> = (!settings.templates_dir.as_os_str().is_empty())
            .then(|| settings.templates_dir.clone());
        env.set_loader(move |name| {
            if let Some(dir) = &overrides
                && !name.contains(['/', '\\'])
            {
                match std::fs::read_to_string(dir.join(name)) {
                    Ok(source) => return Ok(Some(source)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("cannot read template {name}: {e}"),
                        ));
                    }
                }
            }
            Ok(TEMPLATES
                .iter()
                .find(|(file, _)| *file == name)
                .map(|(_, source)| (*source).to_owned()))
        });
        let logo = (!settings.logo_url.is_empty()).then(|| settings.logo_url.clone());
        Self {
            env,
            brand: Value::from_serialize(HashMap::from([
                ("product_name", Some(settings.product_name.clone())),
                ("logo_url", logo),
            ])),
            providers: Value::from_serialize(providers),
            stylesheet: format!(
                "{STYLESHEET}\n:root{{--accent:{}}}\n",
                settings.accent_colour
            ),
        }
    }

    /// The stylesheet, with the configured accent colour.
    pub fn stylesheet(&self) -> &str {
        &self.stylesheet
    }

    /// Renders a page with its context, the branding and the CSRF token.
    pub fn render(
        &self,
        status: StatusCode,
        template: &str,
        csrf_token: &str,
        page: Value,
    ) -> Result<HttpResponse, PageError> {
        let html = self.env.get_template(template)?.render(context! {
            brand => self.brand.clone(),
            providers => self.providers.clone(),
            csrf_token => csrf_token,
            ..page
        })?;
        Ok(HttpResponse::build(status)
            .content_type(ContentType::html())
            .body(html))
    }

    /// A page with a heading, a sentence and maybe a link onward.
    pub fn message(
        &self,
        status: StatusCode,
        heading: &str,
        message: &str,
        link: Option<(&str, &str)>,
    ) -> Result<HttpResponse, PageError> {
        self.render(
            status,
            "message.html",
            "",
            context! {
                heading => heading,
                message => message,
                link_url => link.map(|(url, _)| url),
                link_text => link.map(|(_, text)| text),
            },
        )
    }
}

/// `303 See Other` to a URL: after a form post, and for every browser redirect.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
