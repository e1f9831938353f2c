//! Configuration: built-in defaults (`config/default.toml`, compiled in), then an optional
//! file (`--config` or `GATEHOUSE_CONFIG`), then `GATEHOUSE__SECTION__KEY` environment
//! variables. Unknown keys are an error. Loaded and checked once, in `main`, then passed in.

mod federation;
pub mod metrics;
pub mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use gatehouse_core::CoreSettings;
use gatehouse_core::platform::secrets::MasterKey;
use gatehouse_core::settings::LockoutSettings;
use gatehouse_core::settings::{
    AuditSettings, AuthSettings, BackchannelLogoutSettings, BrowserSessionSettings, MailSettings,
    MailTransportKind, OidcSettings, PasswordSettings, ReadCacheSettings, RevocationSettings,
    SessionSettings, TokenSettings,
};
use gatehouse_core::tokens::keys::KeySettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use metrics::MetricsSettings;
pub use server::{ForwardedHeader, ServerSettings};

/// The defaults: every setting, each with a comment. Kept in the repository as
/// `config/default.toml` so that operators read the same file the binary uses.
pub const DEFAULT_CONFIG: &str = include_str!("../../../../config/default.toml");

/// Prefix of environment variables that override settings (`GATEHOUSE__SERVER__BIND`).
pub const ENV_PREFIX: &str = "GATEHOUSE__";

/// How strict the server is about its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Convenient defaults: a generated master key, mail to the log.
    Development,
    /// Refuses to start with an unsafe configuration.
    Production,
}

/// The whole configuration. Field documentation lives in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub issuer: String,
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub secrets: SecretSettings,
    pub mail: MailSettings,
    pub auth: AuthSettings,
    pub password: PasswordSettings,
    pub sessions: SessionSettings,
    pub read_cache: ReadCacheSettings,
    pub tokens: TokenSettings,
    pub keys: KeySettings,
    pub lockout: LockoutSettings,
    /// The section `[lockout]` replaced; refused with a message naming it.
    #[serde(default)]
    pub login_throttle: Option<serde::de::IgnoredAny>,
    pub revocations: RevocationSettings,
    pub maintenance: MaintenanceSettings,
    pub audit: AuditSettings,
    pub federation: gatehouse_core::settings::FederationSettings,
    pub log: LogSettings,
    pub oidc: OidcSettings,
    pub backchannel_logout: BackchannelLogoutSettings,
    pub browser_sessions: BrowserSessionSettings,
    pub pages: PageSettings,
    pub rate_limit: gatehouse_core::settings::RateLimitSettings,
    pub metrics: MetricsSettings,
}

/// `[pages]`: branding of the hosted pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSettings {
    pub product_name: String,
    pub logo_url: String,
    pub accent_colour: String,
    pub templates_dir: PathBuf,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub auto_migrate: bool,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub sqlite_checkpoint_interval: Duration,
}

/// `[secrets]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    pub master_key: Option<SecretString>,
    pub master_key_file: Option<PathBuf>,
}

/// `[maintenance]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSettings {
    #[serde(with = "humantime_serde")]
    pub purge_interval: Duration,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
    pub json: bool,
}

/// Why the configuration cannot be used. Each problem is one line naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("{}", .0.join("\n"))]
    Unsafe(Vec<String>),
}

impl Config {
    /// Loads defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, &[])
    }

    /// Like [`Config::load`], with TOML texts applied in order after the file and before
    /// the environment (tests use them to set up one server).
    pub fn load_with(file: Option<&Path>, overrides: &[&str]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Load(format!(
                    "the file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        for text in overrides {
            figment = figment.merge(Toml::string(text));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let mut config: Config = figment.extract().map_err(|e| {
            ConfigError::Load(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.read_secret_files()?;
        config.check()?;
        Ok(config)
    }

    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.secrets.master_key_file {
            self.secrets.master_key = Some(read_secret(path, "secrets.master_key_file")?);
        }
        if let Some(path) = &self.mail.smtp_url_file {
            self.mail.smtp_url = read_secret(path, "mail.smtp_url_file")?;
        }
        for provider in &mut self.federation.providers {
            if let Some(path) = &provider.client_secret_file {
                let setting = format!("federation.providers[{}].client_secret_file", provider.id);
                provider.client_secret = Some(read_secret(path, &setting)?);
            }
        }
        if let Some(path) = &self.metrics.bearer_token_file {
            self.metrics.bearer_token = Some(read_secret(path, "metrics.bearer_token_file")?);
        }
        Ok(())
    }

    /// The rules every mode enforces, and in production the rules that keep it safe.
    fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.password.min_length < 1 || self.password.max_length < self.password.min_length {
            problems.push(
                "password.min_length / password.max_length: need 1 <= min_length <= max_length"
                    .to_owned(),
            );
        }
        if self.keys.reload_interval >= self.keys.publish_ahead {
            problems.push(
                "keys.reload_interval: must be shorter than keys.publish_ahead, or an instance could sign with a key \
                 before the others publish it"
                    .to_owned(),
            );
        }
        let issuer_ok = issuer_is_usable(&self.issuer);
        if !issuer_ok {
            problems.push(format!(
                "issuer: `{}` must be an http:// or https:// URL with a host and no query, \
                 fragment or user name, e.g. https://auth.example.com",
                self.issuer
            ));
        }
        let colour = self.pages.accent_colour.as_bytes();
        if !(colour.len() == 7
            && colour[0] == b'#'
            && colour[1..].iter().all(u8::is_ascii_hexdigit))
        {
            problems.push(format!(
                "pages.accent_colour: `{}` is not a #rrggbb colour",
                self.pages.accent_colour
            ));
        }
        let logo = &self.pages.logo_url;
        if !(logo.is_empty()
            || (logo.starts_with('/') && !logo.starts_with("//"))
            || logo.starts_with("https://"))
        {
            problems.push(format!(
                "pages.logo_url: `{logo}` must be an https:// URL or a path on this server"
            ));
        }
        if self.server.max_connections < 1 {
            problems.push("server.max_connections: must be at least 1".to_owned());
        }
        if self.database.sqlite_checkpoint_interval.is_zero() {
            problems
                .push("database.sqlite_checkpoint_interval: must be longer than zero".to_owned());
        }
        problems.extend(crate::request_limits::problems(&self.server));
        problems.extend(lockout_problems(self));
        problems.extend(crate::client_ip::problems(
            &self.server,
            self.mode == Mode::Production,
        ));
        problems.extend(crate::rate_limit::problems(&self.rate_limit));
        problems.extend(federation::problems(
            &self.federation,
            self.mode == Mode::Production,
        ));
        problems.extend(metrics::problems(
            &self.metrics,
            self.server.bind,
            self.mode == Mode::Production,
        ));
        if self.read_cache.ttl > std::time::Duration::from_secs(1) {
            problems.push(
                "read_cache.ttl: at most 1s; other instances must refuse a revoked session, \
                 a demoted admin or a deleted client within a second"
                    .to_owned(),
            );
        }
        if self.audit.retention <= self.maintenance.purge_interval {
            problems.push(
                "audit.retention: must be longer than maintenance.purge_interval (the purge finds \
                 its last run in the audit log)"
                    .to_owned(),
            );
        }
        if self.backchannel_logout.max_attempts == 0 {
            problems.push("backchannel_logout.max_attempts: must be at least 1".to_owned());
        }
        if self.mode == Mode::Production {
            match &self.secrets.master_key {
                None => problems.push(
                    "secrets.master_key: missing; generate one with `openssl rand -base64 32` and set \
                     GATEHOUSE__SECRETS__MASTER_KEY or secrets.master_key_file"
                        .to_owned(),
                ),
                Some(key) => {
                    if let Err(e) = MasterKey::from_base64(key) {
                        problems.push(format!(
                            "secrets.master_key: unusable ({e}); it must be 32 random bytes in base64, \
                             e.g. from `openssl rand -base64 32`"
                        ));
                    }
                }
            }
            if issuer_ok && !self.issuer.starts_with("https://") {
                problems.push(format!(
                    "issuer: `{}` is not https; production tokens and links must use an https:// URL",
                    self.issuer
                ));
            }
            if self.mail.transport == MailTransportKind::Log {
                problems.push(
                    "mail.transport: `log` writes verification and reset links to the log; use `smtp` in production"
                        .to_owned(),
                );
            }
            if self.mail.transport == MailTransportKind::File {
                problems.push(
                    "mail.transport: `file` writes verification and reset links to files on disk; use `smtp` in production"
                        .to_owned(),
                );
            }
            if self.mail.transport == MailTransportKind::Smtp {
                // Never the URL itself: it may hold the SMTP password.
                let setting = if self.mail.smtp_url_file.is_some() {
                    "mail.smtp_url (read from mail.smtp_url_file)"
                } else {
                    "mail.smtp_url"
                };
                match smtp_security(self.mail.smtp_url.expose_secret()) {
                    SmtpSecurity::Encrypted | SmtpSecurity::Loopback => {}
                    SmtpSecurity::Plaintext if self.mail.allow_insecure_smtp => {}
                    SmtpSecurity::Plaintext => problems.push(format!(
                        "{setting}: does not require TLS to a host that is not on loopback, so mails, \
                         their links and the SMTP credentials can be read or changed on the way; use \
                         smtps://host:465 or smtp://host:587?tls=required, or set \
                         mail.allow_insecure_smtp = true if the network to that host is trusted"
                    )),
                    SmtpSecurity::Invalid => problems.push(format!(
                        "{setting}: not a valid smtp:// or smtps:// URL"
                    )),
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Unsafe(problems))
        }
    }

    /// The master key: configured, or in development generated once into the data folder.
    pub fn master_key(&self) -> Result<MasterKey, ConfigError> {
        let encoded = match (&self.secrets.master_key, self.mode) {
            (Some(key), _) => key.clone(),
            (None, Mode::Production) => {
                return Err(ConfigError::Unsafe(vec![
                    "secrets.master_key: missing".to_owned(),
                ]));
            }
            (None, Mode::Development) => self.development_master_key()?,
        };
        MasterKey::from_base64(&encoded)
            .map_err(|e| ConfigError::Unsafe(vec![format!("secrets.master_key: {e}")]))
    }

    fn development_master_key(&self) -> Result<SecretString, ConfigError> {
        let path = self.data_dir.join("master.key");
        if path.is_file() {
            return read_secret(&path, "data_dir/master.key");
        }
        let key = MasterKey::generate_base64().map_err(|e| ConfigError::Load(e.to_string()))?;
        std::fs::create_dir_all(&self.data_dir)
            .and_then(|()| write_private_file(&path, key.expose_secret()))
            .map_err(|e| ConfigError::Load(format!("writing {}: {e}", path.display())))?;
        tracing::warn!(
            path = %path.display(),
            "no secrets.master_key configured: generated one for development; production refuses to start without one"
        );
        Ok(key)
    }

    /// The settings of the domain layer.
    pub fn core_settings(&self) -> CoreSettings {
        CoreSettings {
            issuer: self.issuer.trim_end_matches('/').to_owned(),
            auth: self.auth.clone(),
            password: self.password.clone(),
            sessions: self.sessions.clone(),
            tokens: self.tokens.clone(),
            lockout: self.lockout.clone(),
            oidc: self.oidc.clone(),
            backchannel_logout: self.backchannel_logout.clone(),
            browser_sessions: self.browser_sessions.clone(),
            read_cache: self.read_cache.clone(),
            audit: self.audit.clone(),
            federation: self.federation.clone(),
        }
    }
}

/// The `[lockout]` rules, and the refusal of the section it replaced.
fn lockout_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if config.login_throttle.is_some() {
        problems.push(
            "login_throttle: this section is gone; failed logins are limited by [lockout] \
             (lockout.max_failures, lockout.lock_duration, lockout.window, ...; see \
             docs/configuration.md), and per client IP by the rate limiter"
                .to_owned(),
        );
    }
    let lockout = &config.lockout;
    if lockout.max_failures < 1 {
        problems.push("lockout.max_failures: must be at least 1".to_owned());
    }
    if lockout.device_max_failures < 1 {
        problems.push("lockout.device_max_failures: must be at least 1".to_owned());
    }
    if lockout.window.is_zero() || lockout.lock_duration.is_zero() {
        problems
            .push("lockout.window / lockout.lock_duration: must be longer than zero".to_owned());
    }
    if lockout.device_token_ttl.is_zero() {
        problems.push("lockout.device_token_ttl: must be longer than zero".to_owned());
    }
    problems
}

/// An issuer is the base of every link and the `iss` of every token: an http(s) URL with
/// a host, and nothing that a base URL cannot carry. It is used as written, so it must
/// also be written as a URL parser reads it: no white space (which parsers drop) and a
/// host right after `//` (parsers read `https:///x` as `https://x/`).
fn issuer_is_usable(issuer: &str) -> bool {
    let authority = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"));
    if authority.is_none_or(|rest| rest.starts_with(['/', '\\']))
        || issuer.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    url::Url::parse(issuer).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|host| !host.is_empty())
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none()
    })
}

/// What an SMTP URL protects, read the way lettre reads it (`from_url`).
#[derive(Debug, PartialEq, Eq)]
enum SmtpSecurity {
    /// `smtps://` (TLS from the start) or `smtp://...?tls=required` (STARTTLS or fail).
    Encrypted,
    /// No TLS, or opportunistic STARTTLS (a network attacker can strip it), to a host on
    /// loopback: nothing crosses the network.
    Loopback,
    /// No TLS, or opportunistic STARTTLS, to a host across the network.
    Plaintext,
    /// lettre would refuse it.
    Invalid,
}

fn smtp_security(smtp_url: &str) -> SmtpSecurity {
    let Ok(url) = url::Url::parse(smtp_url) else {
        return SmtpSecurity::Invalid;
    };
    // lettre takes the first `tls` parameter.
    let tls = url
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned());
    let encrypted = match (url.scheme(), tls.as_deref()) {
        ("smtps", _) | ("smtp", Some("required")) => true,
        ("smtp", None | Some("opportunistic")) => false,
        _ => return SmtpSecurity::Invalid,
    };
    // `smtp` is not a special scheme: its host stays text, even an IP address.
    let loopback = match url.host() {
        None => return SmtpSecurity::Invalid,
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    if encrypted {
        SmtpSecurity::Encrypted
    } else if loopback {
        SmtpSecurity::Loopback
    } else {
        SmtpSecurity::Plaintext
    }
}

fn read_secret(path: &Path, setting: &str) -> Result<SecretString, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| SecretString::from(s.trim().to_owned()))
        .map_err(|e| ConfigError::Load(format!("{setting}: cannot read {}: {e}", path.display())))
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_need_a_host_and_nothing_a_base_url_cannot_carry() {
        for good in [
            "https://auth.example.com",
            "https://auth.example.com/",
            "https://example.com/auth",
            "http://127.0.0.1:8080",
        ] {
            assert!(issuer_is_usable(good), "{good}");
        }
        for bad in [
            "https://",
            "http://",
            "https:///path",
            "https:\\\\auth.example.com",
            "https://auth.example.com ",
            "https://auth.\texample.com",
            "HTTPS://auth.example.com",
            "auth.example.com",
            "ftp://auth.example.com",
            "https://auth.example.com?x=1",
            "https://auth.example.com/#top",
            "https://user:pass@auth.example.com",
            "",
        ] {
            assert!(!issuer_is_usable(bad), "{bad}");
        }
    }

    #[test]
    fn a_read_cache_longer_than_a_second_is_refused_naming_the_setting() {
        let long = "[read_cache]\nttl = \"2s\"\n";
        let error = Config::load_with(None, &[long]).unwrap_err().to_string();
        assert!(error.contains("read_cache.ttl"), "{error}");
        let off = "[read_cache]\nttl = \"0s\"\n";
        assert!(Config::load_with(None, &[off]).is_ok());
    }

    #[test]
    fn a_zero_checkpoint_interval_is_refused_naming_the_setting() {
        let zero = "[database]\nsqlite_checkpoint_interval = \"0s\"\n";
        let error = Config::load_with(None, &[zero]).unwrap_err().to_string();
        assert!(
            error.contains("database.sqlite_checkpoint_interval"),
            "{error}"
        );
    }

    #[test]
    fn the_old_login_throttle_section_is_refused_naming_the_lockout() {
        let old = "[login_throttle]\nmax_failures_per_email = 10\n";
        let error = Config::load_with(None, &[old]).unwrap_err().to_string();
        assert!(error.contains("login_throttle"), "{error}");
        assert!(error.contains("[lockout]"), "{error}");
        let zero = "[lockout]\nmax_failures = 0\n";
        let error = Config::load_with(None, &[zero]).unwrap_err().to_string();
        assert!(error.contains("lockout.max_failures"), "{error}");
    }

    #[test]
    fn the_audit_retention_outlives_the_purge_interval() {
        let config = Config::load_with(None, &[]).unwrap();
        assert_eq!(config.audit.retention, Duration::from_secs(400 * 24 * 3600));
        let short = "[audit]\nretention = \"1h\"\n";
        let error = Config::load_with(None, &[short]).unwrap_err().to_string();
        assert!(error.contains("audit.retention"), "{error}");
        let days = "[audit]\nretention = \"30d\"\n";
        let config = Config::load_with(None, &[days]).unwrap();
        assert_eq!(config.audit.retention, Duration::from_secs(30 * 24 * 3600));
    }

    #[test]
    fn smtp_urls_are_read_as_lettre_reads_them() {
        use SmtpSecurity::*;
        for (url, expected) in [
            ("smtps://user:pass@mail.example.com:465", Encrypted),
            ("smtps://mail.example.com", Encrypted),
            (
                "smtp://user:pass@mail.example.com:587?tls=required",
                Encrypted,
            ),
            (
                "smtp://mail.example.com:587?tls=required&tls=opportunistic",
                Encrypted,
            ),
            ("smtp://user:pass@mail.example.com:25", Plaintext),
            ("smtp://mail.example.com:587?tls=opportunistic", Plaintext),
            (
                "smtp://mail.example.com?tls=opportunistic&tls=required",
                Plaintext,
            ),
            ("smtp://10.0.0.5:25", Plaintext),
            ("smtp://127.0.0.2.example.com:25", Plaintext),
            ("smtp://127.0.0.1:2525", Loopback),
            ("smtp://127.8.9.10", Loopback),
            ("smtp://[::1]:2525", Loopback),
            ("smtp://LocalHost:25", Loopback),
            ("smtp://mail.example.com?tls=always", Invalid),
            ("smtpx://mail.example.com", Invalid),
            ("smtp://", Invalid),
            ("not a url", Invalid),
        ] {
            assert_eq!(smtp_security(url), expected, "{url}");
        }
    }
}
