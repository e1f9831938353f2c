//! Verify Gatehouse access tokens inside an app backend.
//!
//! # The model
//!
//! Gatehouse signs access tokens (JWTs with `typ: at+jwt`) with asymmetric keys and publishes
//! the public halves as a JWK set. A [`Verifier`] checks tokens **locally**, without asking
//! Gatehouse per request:
//!
//! 1. [`VerifierBuilder::discover`] reads `{issuer}/.well-known/openid-configuration`, checks
//!    that it names the configured issuer, and fetches the key set from its `jwks_uri`.
//! 2. [`Verifier::verify`] checks the header (algorithm allow-list, `typ`), picks the key by
//!    `kid` (the key's own algorithm must equal the header's, which rules out algorithm
//!    confusion), verifies the signature, then `iss`, `aud`, `exp`, `nbf` and revocation.
//! 3. Gatehouse publishes new keys before it signs with them, so an unknown `kid` means the
//!    cache is stale: the verifier refetches the key set (at most once per
//!    [`VerifierBuilder::min_refetch_interval`]) and tries once more.
//!    [`Verifier::verify_cached`] never does that and never touches the network.
//! 4. A JWT stays valid until it expires, so ending a login session needs one more step:
//!    Gatehouse's **revocation feed** lists revoked sessions. [`Verifier::watch_revocations`]
//!    follows it live (Server-Sent Events, with reconnection) and every token whose `sid` is
//!    listed is refused with [`VerifyError::Revoked`] until its session's tokens have expired.
//!    [`Verifier::sync_revocations`] polls the same list instead.
//! 5. Optionally, [`Verifier::verify_or_introspect`] falls back to RFC 7662 introspection
//!    when the keys cannot be had.
//!
//! # Example
//!
//! ```no_run
//! use gatehouse_verify::{Verifier, VerifyError};
//!
//! # async fn run(token: &str) -> Result<(), VerifyError> {
//! let verifier = Verifier::builder("https://id.example.com")
//!     .audience("notes-api")
//!     .discover()
//!     .await?;
//! // Keep the watcher alive as long as the app runs.
//! let _revocations = verifier.watch_revocations("notes-api", "client-secret");
//!
//! let claims = verifier.verify(token).await?;
//! if claims.has_scope("notes:write") {
//!     println!("{} may write notes", claims.sub);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `actix`: [`BearerClaims`], an actix-web extractor that verifies the `Authorization:
//!   Bearer` token with the `web::Data<Verifier>` of the app and answers `401` itself.

#![warn(missing_docs)]

#[cfg(feature = "actix")]
pub mod actix;
mod claims;
mod credentials;
mod error;
mod keys;
mod revocation;
mod verifier;

#[cfg(feature = "actix")]
pub use actix::{BearerClaims, BearerError};
pub use claims::{Claims, Introspection};
pub use error::VerifyError;
/// Signature algorithms, as named in the JOSE `alg` header (re-exported from `jsonwebtoken`).
pub use jsonwebtoken::Algorithm;
/// A JSON Web Key set, for [`VerifierBuilder::build_with_jwks`] (re-exported from
/// `jsonwebtoken`).
pub use jsonwebtoken::jwk::JwkSet;
pub use revocation::{RevocationEntry, RevocationWatcher};
pub use verifier::{
    DEFAULT_ALGORITHMS, DEFAULT_LEEWAY, DEFAULT_MIN_REFETCH_INTERVAL, DEFAULT_TOKEN_TYPE,
    UnixClock, Verifier, VerifierBuilder,
};

#[cfg(test)]
#[path = "../testsupport/keys.rs"]
mod test_keys;
#[cfg(test)]
mod tests;
