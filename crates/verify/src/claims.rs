//! What a verified token says: [`Claims`], and what introspection answers: [`Introspection`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::VerifyError;

/// The claims of a verified Gatehouse access token.
///
/// Only a [`crate::Verifier`] hands these out, after the signature, issuer, audience, type,
/// lifetime and revocation checks passed.
///
/// ```
/// use gatehouse_verify::Claims;
///
/// let claims: Claims = serde_json::from_value(serde_json::json!({
///     "iss": "https://id.example.com", "sub": "user-1", "aud": "notes-api",
///     "exp": 1_900_000_000, "iat": 1_899_999_100, "nbf": 1_899_999_100,
///     "jti": "j1", "client_id": "notes", "scope": "notes:read notes:write",
///     "tenant": "acme"
/// }))?;
/// assert_eq!(claims.aud, ["notes-api"]);
/// assert!(claims.has_scope("notes:write"));
/// assert_eq!(claims.extra["tenant"], "acme");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer (`iss`).
    pub iss: String,
    /// The subject (`sub`): the user id on user tokens, the client on service tokens.
    pub sub: String,
    /// The audiences (`aud`); the token carries a string or an array, both read as a list.
    #[serde(deserialize_with = "one_or_many", serialize_with = "one_or_many_out")]
    pub aud: Vec<String>,
    /// Expiry (`exp`), unix seconds.
    pub exp: i64,
    /// Issued at (`iat`), unix seconds.
    pub iat: i64,
    /// Not before (`nbf`), unix seconds.
    pub nbf: i64,
    /// The token id (`jti`).
    pub jti: String,
    /// The OAuth client the token was issued to (`client_id`).
    pub client_id: String,
    /// The login session (`sid`, a UUID); present on user tokens, absent on service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The granted scopes (`scope`), space-separated; see [`Claims::has_scope`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The user's role (`role`); user tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Every other claim, as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// `true` when `scope` lists exactly this scope (scopes are compared whole and
    /// case-sensitively, as RFC 6749 §3.3 says).
    ///
    /// ```
    /// # let mut claims: gatehouse_verify::Claims = serde_json::from_value(serde_json::json!({
    /// #     "iss": "i", "sub": "s", "aud": "a", "exp": 2, "iat": 1, "nbf": 1,
    /// #     "jti": "j", "client_id": "c"})).unwrap();
    /// claims.scope = Some("notes:read profile".into());
    /// assert!(claims.has_scope("profile"));
    /// assert!(!claims.has_scope("notes"));
    /// ```
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The granted scopes, one by one.
    ///
    /// ```
    /// # let mut claims: gatehouse_verify::Claims = serde_json::from_value(serde_json::json!({
    /// #     "iss": "i", "sub": "s", "aud": "a", "exp": 2, "iat": 1, "nbf": 1,
    /// #     "jti": "j", "client_id": "c"})).unwrap();
    /// claims.scope = Some("a b".into());
    /// assert_eq!(claims.scopes().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
    }

    /// `true` for tokens issued to a user (they carry a session id), `false` for service
    /// tokens (client credentials).
    ///
    /// ```
    /// # let mut claims: gatehouse_verify::Claims = serde_json::from_value(serde_json::json!({
    /// #     "iss": "i", "sub": "s", "aud": "a", "exp": 2, "iat": 1, "nbf": 1,
    /// #     "jti": "j", "client_id": "c"})).unwrap();
    /// assert!(!claims.is_user_token());
    /// ```
    #[must_use]
    pub fn is_user_token(&self) -> bool {
        self.sid.is_some()
    }
}

/// An RFC 7662 introspection answer.
///
/// When `active` is `false` the issuer says nothing else, and every other field is empty.
///
/// ```
/// use gatehouse_verify::Introspection;
///
/// let answer: Introspection = serde_json::from_str(r#"{"active": false}"#)?;
/// assert!(!answer.active);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Introspection {
    /// Whether the token is currently valid.
    pub active: bool,
    /// The issuer (`iss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The subject (`sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The audiences (`aud`), string or array.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        serialize_with = "one_or_many_out",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aud: Vec<String>,
    /// Expiry, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The session id (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The user's role (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Every other member of the answer (`token_type`, `username`, ...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Introspection {
    /// Turns an active answer into [`Claims`].
    ///
    /// Fails with [`VerifyError::Inactive`] for an inactive answer and with
    /// [`VerifyError::Malformed`] when `iss`, `sub`, `aud`, `exp`, `iat`, `jti` or `client_id`
    /// is missing. A missing `nbf` is read as `iat`. This does not check issuer, audience or
    /// lifetime: [`crate::Verifier::verify_or_introspect`] does.
    ///
    /// ```
    /// use gatehouse_verify::{Introspection, VerifyError};
    ///
    /// let inactive: Introspection = serde_json::from_str(r#"{"active": false}"#)?;
    /// assert_eq!(inactive.into_claims(), Err(VerifyError::Inactive));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn into_claims(self) -> Result<Claims, VerifyError> {
        if !self.active {
            return Err(VerifyError::Inactive);
        }
        let (Some(iss), Some(sub), Some(exp), Some(iat), Some(jti), Some(client_id)) = (
            self.iss,
            self.sub,
            self.exp,
            self.iat,
            self.jti,
            self.client_id,
        ) else {
            return Err(VerifyError::Malformed);
        };
        if self.aud.is_empty() {
            return Err(VerifyError::Malformed);
        }
        Ok(Claims {
            iss,
            sub,
            aud: self.aud,
            exp,
            iat,
            nbf: self.nbf.unwrap_or(iat),
            jti,
            client_id,
            sid: self.sid,
            scope: self.scope,
            role: self.role,
            extra: self.extra,
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// Writes a single audience back as a string, as the issuer sends it.
fn one_or_many_out<S: Serializer>(aud: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => serializer.serialize_str(one),
        many => many.serialize(serializer),
    }
}
