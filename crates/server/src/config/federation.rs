//! `[federation]`: the checks of the upstream providers' settings, each naming the
//! setting it refuses.

use std::collections::HashSet;

use gatehouse_core::federation::upstream::endpoint_problem;
use gatehouse_core::settings::{FederationSettings, ProviderKind};
use secrecy::ExposeSecret;

/// What is wrong with `[federation]`, one sentence per setting.
pub fn problems(federation: &FederationSettings, production: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (index, provider) in federation.providers.iter().enumerate() {
        let name = format!("federation.providers[{index}]");
        let id = &provider.id;
        if id.is_empty()
            || id.len() > 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            problems.push(format!(
                "{name}.id: `{id}` must be 1 to 32 lowercase letters, digits or `-` (it is part of URLs)"
            ));
        } else if id == "mfa" {
            problems.push(format!(
                "{name}.id: `mfa` is taken by the login's second step (/login/mfa)"
            ));
        } else if !seen.insert(id.clone()) {
            problems.push(format!("{name}.id: `{id}` is used by another provider"));
        }
        if provider.client_id.is_empty() {
            problems.push(format!("{name}.client_id: missing"));
        }
        let secret_empty = provider
            .client_secret
            .as_ref()
            .is_none_or(|s| s.expose_secret().is_empty());
        if secret_empty {
            problems.push(format!(
                "{name}.client_secret: missing; set client_secret or client_secret_file"
            ));
        }
        let urls: Vec<(&str, &Option<String>)> = vec![
            ("issuer", &provider.issuer),
            ("authorize_url", &provider.authorize_url),
            ("token_url", &provider.token_url),
            ("api_url", &provider.api_url),
        ];
        for (setting, value) in urls {
            if let Some(problem) = value
                .as_deref()
                .and_then(|u| endpoint_problem(u, !production))
            {
                problems.push(format!("{name}.{setting}: {problem}"));
            }
        }
        match provider.kind {
            ProviderKind::Oidc if provider.issuer.is_none() => problems.push(format!(
                "{name}.issuer: missing; an `oidc` provider is found by its issuer URL"
            )),
            ProviderKind::Oidc | ProviderKind::Google => {
                for (setting, value) in [
                    ("authorize_url", &provider.authorize_url),
                    ("token_url", &provider.token_url),
                    ("api_url", &provider.api_url),
                ] {
                    if value.is_some() {
                        problems.push(format!(
                            "{name}.{setting}: only for `github`; an OpenID Connect provider's endpoints come from its discovery document"
                        ));
                    }
                }
            }
            ProviderKind::Github if provider.issuer.is_some() => problems.push(format!(
                "{name}.issuer: only for `oidc` and `google` providers"
            )),
            ProviderKind::Github => {}
        }
    }
    problems
}
