//! Userinfo (OIDC Core 5.3): the claims about the user that the token's scopes allow.

use serde_json::{Value, json};

use crate::platform::lists::split;
use crate::{Error, Gatehouse, Result};

impl Gatehouse {
    /// OIDC Core 5.3: the claims about the user that the access token's scopes allow.
    pub async fn userinfo(&self, access_token: &str) -> Result<Value> {
        let (claims, user) = self.user_token(access_token, None).await?;
        let scopes: Vec<&str> = claims
            .scope
            .as_deref()
            .map(|s| split(s).collect())
            .unwrap_or_default();
        if !scopes.contains(&"openid") {
            return Err(Error::InsufficientScope {
                scope: "openid",
                message: "userinfo needs a token with the openid scope".to_owned(),
            });
        }
        let mut answer = json!({ "sub": claims.sub });
        if scopes.contains(&"email") {
            answer["email"] = json!(user.email);
            answer["email_verified"] = json!(user.email_verified_at.is_some());
        }
        if scopes.contains(&"profile") {
            answer["name"] = json!(user.name);
        }
        Ok(answer)
    }
}
