//! The Gatehouse domain: accounts, credentials, sessions, one-time tokens, signing keys,
//! access tokens, mail and the audit log. It stores state through SeaORM and sends mail
//! through lettre; it knows nothing of HTTP.
//!
//! [`Gatehouse`] is the one entry point: every business operation is a method on it and
//! runs in one database transaction. Its methods live next to the rules they apply
//! (`accounts`, `sessions`, `admin`, `maintenance`).
#![cfg_attr(
    test,
    allow(
        clippy::disallowed_methods,
        reason = "unit tests may sleep or read the wall clock; the non-test build of the crate is still checked"
    )
)]

mod accounts;
mod admin;
pub mod api_scopes;
pub mod audit;
pub mod backchannel;
pub mod browser;
pub mod clients;
pub mod clock;
pub mod db;
mod error;
pub mod hashing;
pub mod keys;
pub mod mail;
mod mail_cooldown;
mod maintenance;
mod oauth;
pub mod oidc;
pub mod revocations;
pub mod secrets;
mod sessions;
pub mod settings;
pub mod signing;
pub mod throttle;
pub mod types;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

pub use accounts::{MeView, SignupReceipt};
pub use admin::UserView;
pub use admin::{AuditPage, AuditQuery, UserPage, UserPatch, UserQuery};
pub use audit::{AuditEvent, RequestMeta};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use maintenance::PurgeReport;
pub use oauth::ServiceToken;
pub use sessions::{BrowserLogin, Principal, SessionView, TokenPair};
pub use settings::CoreSettings;
pub use types::{Email, Password, Role};

/// The identity service: one per process, shared by every request.
#[derive(Clone)]
pub struct Gatehouse {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    hasher: Arc<hashing::PasswordHasher>,
    mailer: Arc<mail::Mailer>,
    tokens: Arc<signing::AccessTokens>,
    revocations: Arc<revocations::RevocationHub>,
    keyed: Arc<secrets::KeyedHashes>,
    settings: Arc<CoreSettings>,
}

impl Gatehouse {
    /// Builds the service from its collaborators. Signing keys are loaded (or created on
    /// first start) by [`keys::KeyRing::load_or_create`] beforehand.
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        hasher: Arc<hashing::PasswordHasher>,
        mailer: Arc<mail::Mailer>,
        tokens: Arc<signing::AccessTokens>,
        keyed: secrets::KeyedHashes,
        settings: CoreSettings,
    ) -> Self {
        Self {
            db,
            clock,
            hasher,
            mailer,
            tokens,
            revocations: Arc::default(),
            keyed: Arc::new(keyed),
            settings: Arc::new(settings),
        }
    }

    /// The CSRF token of a browser session whose state holds `seed`.
    pub fn csrf_token(&self, seed: &str) -> String {
        self.keyed.csrf_token(seed)
    }

    /// The public base URL, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The access token issuer and its signing keys.
    pub fn access_tokens(&self) -> &signing::AccessTokens {
        &self.tokens
    }

    /// The database connection, for health checks.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The password hasher, whose counters operators and tests read.
    pub fn hasher(&self) -> &hashing::PasswordHasher {
        &self.hasher
    }

    /// Answers whether the database responds.
    pub async fn database_ready(&self) -> Result<()> {
        self.db.ping().await.map_err(|e| Error::Unavailable {
            reason: "database_unreachable",
            source: Some(Box::new(e)),
        })
    }
}
