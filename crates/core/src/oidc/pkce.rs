//! PKCE (RFC 7636): only S256; a verifier is 43 to 128 unreserved characters.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::platform::secrets::constant_time_eq;

/// `BASE64URL(SHA-256(verifier))` as RFC 7636 4.6 computes it.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 4.1: 43 to 128 unreserved characters.
fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The authorization request's PKCE parameters: S256 only, a well-formed challenge, and
/// one required of public clients. `Err` is the `error_description` of an
/// `invalid_request`.
pub(crate) fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
    confidential_client: bool,
) -> Result<(), &'static str> {
    match (challenge, method) {
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => Ok(()),
        (Some(_), Some("S256")) => Err("code_challenge is malformed"),
        (Some(_), _) => Err("code_challenge_method must be S256 (plain is not accepted)"),
        (None, Some(_)) => Err("code_challenge is missing"),
        (None, None) if !confidential_client => Err(
            "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
        ),
        (None, None) => Ok(()),
    }
}

/// The token request's `code_verifier` against the code's challenge (compared in
/// constant time). `Err` is the reason of an `invalid_grant`.
pub(crate) fn check_verifier(
    challenge: Option<&str>,
    verifier: Option<&str>,
) -> Result<(), &'static str> {
    match (challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            if is_pkce_value(verifier)
                && constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
            {
                Ok(())
            } else {
                Err("code_verifier does not match the code_challenge")
            }
        }
        (Some(_), None) => Err("code_verifier is required"),
        // RFC 9700 2.1.1: a verifier without a challenge is a downgrade attempt.
        (None, Some(_)) => Err("code_verifier sent, but the request had no code_challenge"),
        (None, None) => Ok(()),
    }
}
