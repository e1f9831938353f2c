//! The one error type of this crate.
//!
//! Each variant names one reason a token was refused (or could not be checked), so an app can
//! log it precisely and still answer its own clients with a plain `401`.

/// Why a token was refused, or why it could not be checked.
///
/// The variants up to [`VerifyError::Inactive`] describe the token: answer the caller with
/// `401 Unauthorized`. [`VerifyError::Fetch`] and [`VerifyError::Config`] describe this side
/// (the issuer is unreachable, the verifier is misconfigured): they are not the caller's fault.
///
/// ```
/// use gatehouse_verify::VerifyError;
///
/// let err = VerifyError::Expired;
/// assert!(err.is_token_error());
/// assert_eq!(err.to_string(), "the token has expired");
/// assert!(!VerifyError::Fetch("connection refused".into()).is_token_error());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not a well-formed signed JWT (wrong number of parts, bad base64 or JSON,
    /// missing `kid`, a required claim missing or of the wrong type, unknown `crit` header).
    #[error("the token is malformed")]
    Malformed,
    /// No key with the token's `kid` is published by the issuer, even after refetching the
    /// key set (or a refetch was not allowed yet).
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The token's `alg` is not in the allow-list, or does not match the algorithm of the key
    /// its `kid` names.
    #[error("the token's signature algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The signature does not match the header and payload.
    #[error("the token's signature is invalid")]
    InvalidSignature,
    /// The header's `typ` is not the required token type (`at+jwt` by default).
    #[error("the token has the wrong type")]
    WrongType,
    /// The `iss` claim is not the configured issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// None of the token's audiences is accepted by this verifier.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The session the token belongs to (`sid`) was revoked.
    #[error("the token's session was revoked")]
    Revoked,
    /// Introspection answered `"active": false`.
    #[error("the token is not active")]
    Inactive,
    /// The issuer could not be reached, or answered something unusable (discovery, key set,
    /// introspection, revocation feed).
    #[error("could not reach the issuer: {0}")]
    Fetch(String),
    /// The verifier is configured in a way that cannot work (no audience, HMAC algorithms,
    /// issuer mismatch in the discovery document, introspection not configured, ...).
    #[error("invalid verifier configuration: {0}")]
    Config(String),
}

impl VerifyError {
    /// `true` when the token itself was refused (answer `401`), `false` when the failure is
    /// on this side ([`VerifyError::Fetch`], [`VerifyError::Config`]).
    ///
    /// ```
    /// use gatehouse_verify::VerifyError;
    ///
    /// assert!(VerifyError::Revoked.is_token_error());
    /// assert!(!VerifyError::Config("no audience".into()).is_token_error());
    /// ```
    #[must_use]
    pub fn is_token_error(&self) -> bool {
        !matches!(self, Self::Fetch(_) | Self::Config(_))
    }
}

/// Maps a `jsonwebtoken` failure to the reason we report.
pub(crate) fn from_jwt(err: &jsonwebtoken::errors::Error) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidSignature
        // A published key that the crypto backend cannot use verifies nothing.
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => VerifyError::InvalidSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            VerifyError::AlgorithmNotAllowed
        }
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        _ => VerifyError::Malformed,
    }
}
