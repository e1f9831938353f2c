//! The settings the domain needs, as they appear in the configuration file (one section
//! each). Every field is documented in `config/default.toml`, which is also where every
//! default lives: these types have no defaults of their own.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Everything `gatehouse-core` is configured with.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// Public base URL; the `iss` of every token and the base of every emailed link.
    pub issuer: String,
    pub auth: AuthSettings,
    pub password: PasswordSettings,
    pub sessions: SessionSettings,
    pub tokens: TokenSettings,
    pub lockout: LockoutSettings,
    pub oidc: OidcSettings,
    pub backchannel_logout: BackchannelLogoutSettings,
    pub browser_sessions: BrowserSessionSettings,
    pub read_cache: ReadCacheSettings,
    pub audit: AuditSettings,
    pub federation: FederationSettings,
}

/// `[federation]`: signing in with upstream providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSettings {
    /// How long a sign-in may take at the provider, from the button to the callback.
    #[serde(with = "humantime_serde")]
    pub flow_timeout: Duration,
    /// How long the provider's endpoints may take to answer one request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The largest answer read from a provider's endpoint (discovery, keys, token, user);
    /// a larger one fails the sign-in.
    pub max_response_bytes: usize,
    /// `[[federation.providers]]`: none by default.
    #[serde(default)]
    pub providers: Vec<ProviderSettings>,
}

/// The kind of an upstream provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// GitHub's OAuth apps: the user and their addresses from its REST API.
    Github,
    /// Google: OpenID Connect at `https://accounts.google.com`.
    Google,
    /// Any OpenID Connect provider, by its `issuer` (discovery, ID token checked against
    /// its JWKS).
    Oidc,
}

/// One `[[federation.providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// In URLs: `/login/{id}`, `/login/{id}/callback`. Lowercase letters, digits, `-`.
    pub id: String,
    pub kind: ProviderKind,
    /// The button's label ("Sign in with ..."); the kind's name when absent.
    #[serde(default)]
    pub display_name: Option<String>,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// A file holding the client secret (read at start-up), instead of `client_secret`.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// The scopes asked for; the kind's defaults when absent (`openid email profile`,
    /// GitHub `read:user user:email`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// `oidc`: the provider's issuer URL (discovery at
    /// `{issuer}/.well-known/openid-configuration`). `google`: defaults to Google's.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `github`: the authorization endpoint (GitHub Enterprise); github.com's by default.
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// `github`: the token endpoint; github.com's by default.
    #[serde(default)]
    pub token_url: Option<String>,
    /// `github`: the REST API's base URL; `https://api.github.com` by default.
    #[serde(default)]
    pub api_url: Option<String>,
}

/// `[audit]`: how long the audit log keeps its entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Entries older than this are deleted by the periodic purge.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

/// `[oidc]`: the authorization code flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// How long an authorization code can be exchanged.
    #[serde(with = "humantime_serde")]
    pub authorization_code_ttl: Duration,
}

/// `[backchannel_logout]`: telling apps that a session ended.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackchannelLogoutSettings {
    /// How often each instance looks for logout notices to send.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Give up on one delivery attempt after this long.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The wait before the first retry; it doubles after each failure.
    #[serde(with = "humantime_serde")]
    pub first_retry_after: Duration,
    /// Attempts before a notice is given up (and recorded as failed in the audit log).
    pub max_attempts: u32,
}

/// `[browser_sessions]`: the session cookie of the hosted pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserSessionSettings {
    /// A browser session without activity for this long ends (its login may live on
    /// for apps); the login's own lifetime is the absolute limit.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

/// `[auth]`: login rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Refuse logins until the email address is verified.
    pub require_verified_email: bool,
    /// Sensitive actions (changing the password, two-factor settings, admin writes)
    /// need an authentication of the session within this long; older ones must prove
    /// themselves again (`POST /api/v1/reauthenticate`).
    #[serde(with = "humantime_serde")]
    pub fresh_age: Duration,
    /// How long the second step of a login with two-factor authentication may wait
    /// after the password was accepted.
    #[serde(with = "humantime_serde")]
    pub mfa_login_timeout: Duration,
    /// The issuer name authenticator apps show beside the account.
    pub totp_issuer: String,
    /// How long a session an admin opens as a user (impersonation) lasts.
    #[serde(with = "humantime_serde")]
    pub impersonation_lifetime: Duration,
    /// How long the one-time link that opens an impersonated session in a browser lasts.
    #[serde(with = "humantime_serde")]
    pub impersonation_link_ttl: Duration,
}

/// `[password]`: password rules and the cost and concurrency of hashing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    /// Fewest characters (Unicode scalar values) a new password may have.
    pub min_length: usize,
    /// Most characters a password may have; longer ones are refused before hashing.
    pub max_length: usize,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id time cost (passes).
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Hashes computed at once; 0 means one per CPU core.
    pub max_concurrent_hashes: usize,
    /// Requests allowed to wait for a hashing slot; beyond that they get 503.
    pub max_queued_hashes: usize,
    /// The `Retry-After` sent with that 503.
    #[serde(with = "humantime_serde")]
    pub overload_retry_after: Duration,
}

/// `[sessions]`: how long a login lasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// Absolute lifetime of a session from login.
    #[serde(with = "humantime_serde")]
    pub lifetime: Duration,
    /// A session not refreshed for this long ends.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

/// `[read_cache]`: rows that request checks read, kept in memory for a moment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadCacheSettings {
    /// How long a row, once read, answers checks without a database round-trip (at most
    /// one second; zero reads every time).
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Most sessions (with their users) kept.
    pub sessions: u64,
    /// Most OAuth clients kept.
    pub clients: u64,
}

/// `[tokens]`: access, refresh and one-time token rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Lifetime of an access token.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// How long an already-rotated refresh token is still accepted.
    #[serde(with = "humantime_serde")]
    pub refresh_reuse_grace: Duration,
    /// Lifetime of an email verification link.
    #[serde(with = "humantime_serde")]
    pub email_verification_ttl: Duration,
    /// Lifetime of a password reset link.
    #[serde(with = "humantime_serde")]
    pub password_reset_ttl: Duration,
    /// Lifetime of the link that confirms a new email address.
    #[serde(with = "humantime_serde")]
    pub email_change_ttl: Duration,
    /// Lifetime of the link, mailed to the old address, that undoes an email change.
    #[serde(with = "humantime_serde")]
    pub email_change_undo_ttl: Duration,
    /// Fewest time between two verification or reset mails to one address.
    #[serde(with = "humantime_serde")]
    pub mail_cooldown: Duration,
    /// The `aud` of access tokens of clients without an audience of their own.
    pub default_audience: String,
    /// The algorithm of new signing keys.
    pub signing_alg: crate::tokens::keys::SigningAlgorithm,
}

/// `[revocations]`: the revocation feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationSettings {
    /// How often each instance looks for revocations made by any instance.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often an idle event stream sends a keep-alive comment.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
}

/// How mail leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    /// Write each mail to the log (development only: the log then holds the links).
    Log,
    /// Send through an SMTP server.
    Smtp,
    /// Write each mail as an `.eml` file into `mail.file_dir`.
    File,
}

/// `[mail]`: outgoing mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: MailTransportKind,
    /// `smtp://host:port` (plain, or `?tls=required` for STARTTLS), `smtps://user:pass@host:465`.
    pub smtp_url: SecretString,
    /// A file holding the SMTP URL, read instead of `smtp_url` when set.
    pub smtp_url_file: Option<PathBuf>,
    /// Production refuses an `smtp_url` that does not require TLS (neither `smtps://` nor
    /// `?tls=required`) unless its host is on loopback; `true` accepts it, for a relay
    /// reached over a network the operator trusts.
    pub allow_insecure_smtp: bool,
    /// The `From` mailbox, e.g. `Gatehouse <no-reply@example.com>`.
    pub from: String,
    /// Folder for the `file` transport.
    pub file_dir: PathBuf,
    /// Give up on one SMTP delivery after this long.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The product name used in mail texts.
    pub product_name: String,
    pub outbox: MailOutboxSettings,
}

/// `[mail.outbox]`: how promised mail is queued, retried and kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailOutboxSettings {
    /// How often each instance looks for due mail (it is also woken when mail is queued).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The wait before the first retry; it doubles after each failure.
    #[serde(with = "humantime_serde")]
    pub first_retry_after: Duration,
    /// Attempts before a mail is given up as `dead`.
    pub max_attempts: u32,
    /// How long a claimed mail is reserved for the instance sending it; longer than
    /// `mail.timeout`, so a claim never runs out during a send.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How long a sent mail's row (without its message) stays for admins to see.
    #[serde(with = "humantime_serde")]
    pub sent_retention: Duration,
    /// How long a dead mail stays for admins to see and retry.
    #[serde(with = "humantime_serde")]
    pub dead_retention: Duration,
}

/// `[lockout]`: failed logins slow down and then lock the account for clients without a
/// trusted device token; a client with one is judged by its own failures only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutSettings {
    /// How far back failed logins count.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Failures (within `window`, from clients without a trusted device token) after
    /// which the next attempts must wait `slow_down_delay`, doubling with each failure.
    pub slow_down_after: u64,
    /// The first wait of the slow-down.
    #[serde(with = "humantime_serde")]
    pub slow_down_delay: Duration,
    /// Failures (within `window`, from clients without a trusted device token) that lock
    /// the account for such clients.
    pub max_failures: u64,
    /// How long a lock lasts (a password reset or an admin ends it earlier).
    #[serde(with = "humantime_serde")]
    pub lock_duration: Duration,
    /// Failures (within `window`) after which a device token is no longer trusted.
    pub device_max_failures: u64,
    /// How long a device token stays valid after its last login.
    #[serde(with = "humantime_serde")]
    pub device_token_ttl: Duration,
}

/// `[rate_limit]`: request rate limits per client IP and per account, by class of request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `false` turns every limit off (each class has its own switch too).
    pub enabled: bool,
    /// Where the counters live.
    pub backend: RateLimitBackendKind,
    /// The Redis server of the `redis` backend.
    pub redis_url: SecretString,
    /// Prefix of every Redis key the limiter writes (several deployments may share a Redis).
    pub redis_key_prefix: String,
    /// Give up on one Redis call (connect or script) after this long.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// What a request gets when the backend cannot answer.
    pub on_backend_error: OnBackendError,
    pub login: RateClassSettings,
    pub signup: RateClassSettings,
    pub mail: RateClassSettings,
    pub password_reset: RateClassSettings,
    pub token: RateClassSettings,
    pub introspect: RateClassSettings,
    pub authorize: RateClassSettings,
    pub api: RateClassSettings,
}

/// Where the rate limiter keeps its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackendKind {
    /// In this process: right for one instance only.
    Memory,
    /// In Redis: shared by every instance using the same Redis and key prefix.
    Redis,
}

/// What the limiter does when its backend (Redis) does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBackendError {
    /// Refuse the request: `503 rate_limit_unavailable`.
    Closed,
    /// Let the request through unlimited.
    Open,
}

/// `[rate_limit.<class>]`: one class of requests. A limit of 0 means "not counted".
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateClassSettings {
    pub enabled: bool,
    /// Requests per `period` from one client IP.
    pub per_ip: u32,
    /// Requests per `period` for one account (email address, client, token).
    pub per_account: u32,
    /// The window the limits are spread over (GCRA: one request every period / limit,
    /// with bursts up to the limit).
    #[serde(with = "humantime_serde")]
    pub period: Duration,
}
