//! `[metrics]`: whether `GET /metrics` is served, where, and behind which token.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Fewest characters of `metrics.bearer_token`.
pub const MIN_TOKEN_LENGTH: usize = 16;

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// A listener of its own for `/metrics`; then the public listener has none.
    #[serde(default)]
    pub bind: Option<SocketAddr>,
    /// The token scrapers send as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<SecretString>,
    /// Read the token from this file instead.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
}

impl MetricsSettings {
    /// Whether `/metrics` is served on the public listener (`server.bind`).
    pub fn on_public_listener(&self) -> bool {
        self.enabled && self.bind.is_none()
    }

    /// The address of the metrics listener, when there is one.
    pub fn listener(&self) -> Option<SocketAddr> {
        self.bind.filter(|_| self.enabled)
    }
}

/// The problems of `[metrics]`, each naming its setting (the token itself is never shown).
pub fn problems(
    settings: &MetricsSettings,
    public_bind: SocketAddr,
    production: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let setting = if settings.bearer_token_file.is_some() {
        "metrics.bearer_token (read from metrics.bearer_token_file)"
    } else {
        "metrics.bearer_token"
    };
    match &settings.bearer_token {
        Some(token) if token.expose_secret().chars().count() < MIN_TOKEN_LENGTH => {
            problems.push(format!(
                "{setting}: shorter than {MIN_TOKEN_LENGTH} characters; use a random one, e.g. \
                 from `openssl rand -base64 32`"
            ));
        }
        Some(_) => {}
        None if production && settings.on_public_listener() => problems.push(
            "metrics.bearer_token: /metrics would be open to anyone on the public listener \
             (metrics.enabled = true without metrics.bind); in production set \
             metrics.bearer_token_file (or GATEHOUSE__METRICS__BEARER_TOKEN), or serve the \
             metrics on a listener of their own with metrics.bind"
                .to_owned(),
        ),
        None => {}
    }
    if settings.enabled && settings.bind == Some(public_bind) {
        problems.push(format!(
            "metrics.bind: `{public_bind}` is server.bind; the metrics listener needs an address of its own"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use secrecy::ExposeSecret;

    const PRODUCTION: &str = "mode = \"production\"\n";

    fn problems(layers: &[&str]) -> String {
        match Config::load_with(None, layers) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn production_refuses_open_metrics_on_the_public_listener_naming_the_setting() {
        // Production refuses this test's other settings too (no master key, ...): only
        // the metrics lines matter here.
        let open = problems(&[PRODUCTION, "[metrics]\nenabled = true\n"]);
        assert!(open.contains("metrics.bearer_token:"), "{open}");
        assert!(open.contains("metrics.bind"), "{open}");
        for fine in [
            "[metrics]\nenabled = true\nbearer_token = \"0123456789abcdef0123\"\n",
            "[metrics]\nenabled = true\nbind = \"127.0.0.1:9090\"\n",
            "[metrics]\nenabled = false\n",
        ] {
            let problems = problems(&[PRODUCTION, fine]);
            assert!(!problems.contains("metrics."), "{fine}: {problems}");
        }
        // Development serves them open, for a local Prometheus.
        assert_eq!(problems(&["[metrics]\nenabled = true\n"]), "");
    }

    #[test]
    fn a_short_token_and_the_public_address_are_refused_in_every_mode() {
        let short = problems(&["[metrics]\nenabled = true\nbearer_token = \"short\"\n"]);
        assert!(
            short.contains("metrics.bearer_token: shorter than 16"),
            "{short}"
        );
        assert!(
            !short.contains("\"short\"") && !short.contains("`short`"),
            "{short}"
        );
        let same = problems(&["[metrics]\nenabled = true\nbind = \"127.0.0.1:8080\"\n"]);
        assert!(same.contains("metrics.bind:"), "{same}");
        let other = problems(&["[metrics]\nenabled = true\nbind = \"127.0.0.1:9090\"\n"]);
        assert_eq!(other, "");
    }

    #[test]
    fn the_token_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics_token");
        std::fs::write(&path, "a token read from its file\n").unwrap();
        let layer = format!(
            "[metrics]\nenabled = true\nbearer_token_file = \"{}\"\n",
            path.display()
        );
        let config = Config::load_with(None, &[&layer]).unwrap();
        let token = config.metrics.bearer_token.unwrap();
        assert_eq!(token.expose_secret(), "a token read from its file");
        std::fs::write(&path, "short").unwrap();
        let short = problems(&[&layer]);
        assert!(
            short.contains("metrics.bearer_token (read from metrics.bearer_token_file)"),
            "{short}"
        );
    }
}
