//! The token endpoint's grants for clients: client credentials (a token for the client
//! itself) and the refresh grant's permission check (RFC 6749).

use serde::Serialize;

use crate::oauth::clients::{Client, GrantType};
use crate::platform::audit::RequestMeta;
use crate::platform::lists::split;
use crate::sessions::TokenPair;
use crate::tokens::access::TokenGrant;
use crate::{Error, Gatehouse, Result};

/// The answer of the token endpoint for a service token (no refresh token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Gatehouse {
    /// `grant_type=client_credentials`: a token for the client itself, with the requested
    /// scopes (all of its registered scopes when none are asked for).
    pub async fn client_credentials_grant(
        &self,
        client: &Client,
        scope: Option<&str>,
    ) -> Result<ServiceToken> {
        if !client.is_confidential() || !client.allows(GrantType::ClientCredentials) {
            return Err(Error::UnauthorizedClient(
                "this client may not use client_credentials".to_owned(),
            ));
        }
        let allowed: Vec<&str> = client.scopes().collect();
        let granted: Vec<&str> = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            Some(requested) => {
                let requested: Vec<&str> = split(requested).collect();
                if let Some(unknown) = requested.iter().find(|s| !allowed.contains(s)) {
                    return Err(Error::InvalidScope(format!(
                        "scope `{unknown}` is not allowed for this client"
                    )));
                }
                requested
            }
            None => allowed,
        };
        let scope = (!granted.is_empty()).then(|| granted.join(" "));
        let (access_token, _) = self
            .tokens
            .issue(
                TokenGrant {
                    subject: client.id().to_owned(),
                    client_id: client.id().to_owned(),
                    audience: client
                        .audience(&self.settings.tokens.default_audience)
                        .to_owned(),
                    session: None,
                    scope: scope.clone(),
                    role: None,
                    actor: None,
                },
                self.clock.now(),
            )
            .await?;
        Ok(ServiceToken {
            access_token,
            token_type: "Bearer",
            expires_in: self.tokens.ttl().as_secs(),
            scope,
        })
    }

    /// `grant_type=refresh_token` at the token endpoint: the client must be allowed the
    /// grant, and the token must be its own (see [`Gatehouse::refresh`]).
    pub async fn refresh_token_grant(
        &self,
        client: &Client,
        refresh_token: &str,
        meta: &RequestMeta,
    ) -> Result<TokenPair> {
        if !client.allows(GrantType::RefreshToken) {
            return Err(Error::UnauthorizedClient(
                "this client may not use refresh_token".to_owned(),
            ));
        }
        self.refresh(refresh_token, client.id(), meta).await
    }
}
