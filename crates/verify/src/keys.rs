//! The key cache: which published keys we trust, and for which single algorithm each.

use std::collections::HashMap;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One usable verification key, bound to exactly one algorithm.
pub(crate) struct VerifyingKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The keys of one JWKS fetch, by `kid`.
#[derive(Default)]
pub(crate) struct KeyStore {
    keys: HashMap<String, VerifyingKey>,
}

impl KeyStore {
    /// Keeps the keys that have a `kid`, are meant for signatures, name (or imply) an algorithm
    /// in `allowed`, and that the crypto backend accepts. Everything else is skipped: a key set
    /// may well carry keys for other purposes.
    pub(crate) fn from_jwks<'a>(
        jwks: impl IntoIterator<Item = &'a Jwk>,
        allowed: &[Algorithm],
    ) -> Self {
        let mut keys = HashMap::new();
        for jwk in jwks {
            let Some(kid) = jwk.common.key_id.as_deref() else {
                continue;
            };
            if !usable_for_signatures(jwk) {
                continue;
            }
            let Some(alg) = key_algorithm(jwk) else {
                tracing::debug!(kid, "skipping a JWK whose algorithm we cannot tell or use");
                continue;
            };
            if !allowed.contains(&alg) {
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.to_owned(), VerifyingKey { alg, key });
                }
                Err(error) => tracing::warn!(kid, %error, "skipping an unreadable JWK"),
            }
        }
        Self { keys }
    }

    /// Reads the `keys` array member by member, so one key of a type we do not know does not
    /// make the whole set unreadable.
    pub(crate) fn from_json(body: &[u8], allowed: &[Algorithm]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet =
            serde_json::from_slice(body).map_err(|e| format!("unreadable JWK set: {e}"))?;
        let jwks: Vec<Jwk> = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value(value).ok())
            .collect();
        Ok(Self::from_jwks(&jwks, allowed))
    }

    pub(crate) fn from_set(set: &JwkSet, allowed: &[Algorithm]) -> Self {
        Self::from_jwks(&set.keys, allowed)
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

fn usable_for_signatures(jwk: &Jwk) -> bool {
    let use_ok = match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => true,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_)) => false,
    };
    let ops_ok = jwk
        .common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    use_ok && ops_ok
}

/// The one algorithm a key may verify: its own `alg` when it has one (and that `alg` fits the
/// key type), else the algorithm its type and curve imply. Symmetric keys never qualify, which
/// is what stops a public key from being used as an HMAC secret.
pub(crate) fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
        Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
        Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
        Some(KeyAlgorithm::PS384) => Some(Algorithm::PS384),
        Some(KeyAlgorithm::PS512) => Some(Algorithm::PS512),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::ES384) => Some(Algorithm::ES384),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        // HMAC, encryption algorithms and anything unknown: not a signature key for us.
        Some(_) => return None,
    };
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => match declared {
            None => Some(Algorithm::RS256),
            Some(
                alg @ (Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512),
            ) => Some(alg),
            Some(_) => None,
        },
        AlgorithmParameters::EllipticCurve(params) => {
            let implied = match params.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                EllipticCurve::P521 | EllipticCurve::Ed25519 => return None,
            };
            declared.map_or(Some(implied), |alg| (alg == implied).then_some(alg))
        }
        AlgorithmParameters::OctetKeyPair(params) => {
            if params.curve != EllipticCurve::Ed25519 {
                return None;
            }
            declared.map_or(Some(Algorithm::EdDSA), |alg| {
                (alg == Algorithm::EdDSA).then_some(alg)
            })
        }
        AlgorithmParameters::OctetKey(_) => None,
    }
}
