//! The Gatehouse domain: accounts, credentials, sessions, one-time tokens, signing keys,
//! access tokens, mail and the audit log. It stores state through SeaORM and sends mail
//! through lettre; it knows nothing of HTTP.
//!
//! One folder per concept; each depends only on the ones listed before it:
//!
//! - [`platform`]: the audit log, the clock, the database, errors, secrets and keyed hashes.
//! - [`tokens`]: signing keys, access tokens, ID tokens, who a token is for (audiences and
//!   the scopes of Gatehouse's own API).
//! - [`identity`]: email and password values, password hashing, the login throttle.
//! - [`mail`]: the mails Gatehouse sends, their transports, and the outbox that queues them
//!   in the transaction that promises them.
//! - [`sessions`]: logins, refresh rotation and reuse detection, the live-session check,
//!   revocation, browser sessions, the revocation feed, back-channel logout.
//! - [`accounts`]: sign-up, email verification, password reset and change, mail cooldowns,
//!   and the admins' user management.
//! - [`oauth`]: clients, the client grants, introspection, RFC 7009 revocation.
//! - [`oidc`]: the authorization endpoint, PKCE, consent, codes, userinfo, logout.
//!
//! [`settings`] gathers every concept's settings; `maintenance` purges what every concept
//! leaves behind. [`Gatehouse`] is the one entry point: every business operation is a
//! method on it, defined in the concept it belongs to, and runs in one database
//! transaction.
#![cfg_attr(
    test,
    allow(
        clippy::disallowed_methods,
        reason = "unit tests may sleep or read the wall clock; the non-test build of the crate is still checked"
    )
)]

pub mod accounts;
pub mod federation;
pub mod identity;
pub mod mail;
mod maintenance;
pub mod oauth;
pub mod oidc;
pub mod platform;
pub mod rate_limit;
mod scrape;
pub mod sessions;
pub mod settings;
pub mod tokens;

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DatabaseTransaction};

pub use accounts::admin::UserView;
pub use accounts::admin::{AuditPage, AuditQuery, UserPage, UserPatch, UserQuery};
pub use accounts::bans::{BanRequest, BanView};
pub use accounts::{MeView, SignupReceipt};
pub use identity::types::{Email, Password, Role};
pub use maintenance::PurgeReport;
pub use oauth::grants::ServiceToken;
pub use platform::audit::{AuditEvent, RequestMeta};
pub use platform::clock::{Clock, ManualClock, SystemClock};
pub use platform::error::{Error, Result};
pub use sessions::{BrowserLogin, Principal, SessionView, TokenPair};
pub use settings::CoreSettings;

/// The identity service: one per process, shared by every request.
#[derive(Clone)]
pub struct Gatehouse {
    /// Reads. On SQLite its connections are read-only: every write goes to `writer`.
    db: DatabaseConnection,
    /// Every write: transactions ([`Self::begin_write`]) and single statements. On SQLite
    /// one connection, for which writes queue ([`platform::db::Database`]).
    writer: DatabaseConnection,
    clock: Arc<dyn Clock>,
    hasher: Arc<identity::hashing::PasswordHasher>,
    mailer: Arc<mail::Mailer>,
    tokens: Arc<tokens::access::AccessTokens>,
    revocations: Arc<sessions::revocations::RevocationHub>,
    /// Sessions and their users as read within the last `read_cache.ttl`.
    live_sessions: Arc<sessions::live::LiveSessions>,
    /// OAuth clients as read within the last `read_cache.ttl`.
    known_clients: Arc<oauth::clients::KnownClients>,
    /// Refresh-token rotations, written in groups on `writer`.
    rotations: Arc<sessions::refresh::Rotations>,
    keyed: Arc<platform::secrets::KeyedHashes>,
    /// Seals and opens TOTP secrets (a key derived from the master key for them alone).
    mfa_key: Arc<platform::secrets::SealingKey>,
    /// The upstream identity providers of `[federation]`.
    providers: Arc<federation::upstream::Providers>,
    settings: Arc<CoreSettings>,
    rate_limiter: Option<Arc<rate_limit::RateLimiter>>,
    metrics: Arc<platform::metrics::Metrics>,
    /// Keeps the database's own work (the SQLite checkpoints) going while the service
    /// lives; `db` and `writer` are its connections, counted by `metrics`.
    _database: platform::db::Database,
}

impl Gatehouse {
    /// Builds the service from its collaborators. Signing keys are loaded (or created on
    /// first start) by [`tokens::keys::KeyRing::load_or_create`] beforehand.
    ///
    /// Call it within a Tokio runtime: it starts the task that writes refresh-token
    /// rotations on it.
    pub fn new(
        db: platform::db::Database,
        clock: Arc<dyn Clock>,
        hasher: Arc<identity::hashing::PasswordHasher>,
        mailer: Arc<mail::Mailer>,
        tokens: Arc<tokens::access::AccessTokens>,
        keys: platform::secrets::DerivedKeys,
        settings: CoreSettings,
    ) -> Result<Self> {
        let metrics = Arc::new(platform::metrics::Metrics::new());
        let mut reads = db.reads().clone();
        let mut writer = db.writes().clone();
        metrics.count_statements(&mut reads, "reads");
        metrics.count_statements(&mut writer, "writes");
        let providers =
            federation::upstream::Providers::new(&settings.federation, &settings.issuer)?;
        let rotations = sessions::refresh::Rotations::start(
            writer.clone(),
            sessions::refresh::ROTATIONS_PER_GROUP,
            sessions::refresh::ROTATIONS_QUEUED,
        );
        Ok(Self {
            db: reads,
            writer,
            rotations: Arc::new(rotations),
            clock,
            hasher,
            mailer,
            tokens,
            revocations: Arc::default(),
            live_sessions: Arc::new(platform::read_cache::ReadCache::new(
                settings.read_cache.ttl,
                settings.read_cache.sessions,
            )),
            known_clients: Arc::new(platform::read_cache::ReadCache::new(
                settings.read_cache.ttl,
                settings.read_cache.clients,
            )),
            keyed: Arc::new(keys.hashes),
            mfa_key: Arc::new(keys.totp),
            providers: Arc::new(providers),
            settings: Arc::new(settings),
            rate_limiter: None,
            metrics,
            _database: db,
        })
    }

    /// The service with the request rate limiter of this instance (see [`rate_limit`]).
    pub fn with_rate_limiter(mut self, limiter: rate_limit::RateLimiter) -> Self {
        self.rate_limiter = Some(Arc::new(limiter));
        self
    }

    /// The request rate limiter, if one was set up.
    pub fn rate_limiter(&self) -> Option<&Arc<rate_limit::RateLimiter>> {
        self.rate_limiter.as_ref()
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
    pub fn access_tokens(&self) -> &tokens::access::AccessTokens {
        &self.tokens
    }

    /// The database connection, for health checks.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection writes go through (on SQLite the only one that may write; see
    /// [`platform::db::Database`]), for tools and tests that change rows themselves.
    pub fn db_writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// This instance's metrics (see [`platform::metrics`]).
    pub fn metrics(&self) -> &platform::metrics::Metrics {
        &self.metrics
    }

    /// The password hasher, whose counters operators and tests read.
    pub fn hasher(&self) -> &identity::hashing::PasswordHasher {
        &self.hasher
    }

    /// Begins a write transaction on the writer (`IMMEDIATE` on SQLite). Nothing slow
    /// (password hashing, signing, network calls) may run while it is open: every other
    /// write waits for it.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction> {
        Ok(platform::db::begin_write(&self.writer).await?)
    }

    /// Answers whether the database responds.
    pub async fn database_ready(&self) -> Result<()> {
        self.db.ping().await.map_err(|e| Error::Unavailable {
            reason: "database_unreachable",
            source: Some(Box::new(e)),
        })
    }
}
