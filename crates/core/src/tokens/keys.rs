//! Signing keys and their rotation.
//!
//! Each key is generated here, stored with its private part sealed under the master key,
//! and has a `generation` (1, 2, ...) and an `activates_at`. Every state follows from
//! those times, so all instances reading the same rows agree on it:
//! - *next*: `activates_at` is in the future; published in the JWKS, signs nothing yet;
//! - *active*: the key with the latest `activates_at` that has passed; it signs;
//! - *retired*: a later key is active; still published until every token it signed has
//!   expired (its successor's `activates_at` plus the access token lifetime);
//! - *expired*: no longer published, refused, and deleted by the purge.
//!
//! A rotation adds a key that activates `keys.publish_ahead` later, longer than any JWKS
//! cache may hold the old set. The unique `generation` makes concurrent rotations by
//! several instances add one key, not two.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use gatehouse_entity::signing_keys;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    SqlErr,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::platform::clock::Clock;
use crate::platform::secrets::MasterKey;
use crate::{Error, Result};

/// Shortest time between two reloads of the key set caused by an unknown `kid`.
const UNKNOWN_KID_RELOAD_INTERVAL: chrono::Duration = chrono::Duration::seconds(5);
/// Extra time a retired key stays published, for clock differences between machines.
const RETIRED_KEY_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// The JWS algorithms Gatehouse signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlgorithm {
    /// Every algorithm, in the order the discovery document lists them.
    pub const ALL: [SigningAlgorithm; 3] = [
        SigningAlgorithm::RS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    pub(crate) fn jws(self) -> Algorithm {
        match self {
            SigningAlgorithm::RS256 => Algorithm::RS256,
            SigningAlgorithm::ES256 => Algorithm::ES256,
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }

    fn from_stored(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == stored)
    }
}

/// `[keys]`: rotation of signing keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// A new key is added this long after the last one.
    #[serde(with = "humantime_serde")]
    pub rotate_every: Duration,
    /// A new key is published this long before it signs anything.
    #[serde(with = "humantime_serde")]
    pub publish_ahead: Duration,
    /// Each instance rereads the key set at least this often.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Next,
    Active,
    Retired,
    Expired,
}

/// A key as `gatehouse keys list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub generation: i64,
    pub algorithm: String,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    /// When a successor took over signing.
    pub retires_at: Option<DateTime<Utc>>,
    /// When it leaves the JWKS.
    pub unpublished_at: Option<DateTime<Utc>>,
}

struct LoadedKey {
    row: signing_keys::Model,
    algorithm: SigningAlgorithm,
    jwk: Value,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

struct KeySet {
    keys: Vec<Arc<LoadedKey>>,
    loaded_at: DateTime<Utc>,
}

/// The keys of this deployment, cached and reread from the database now and then.
pub struct KeyRing {
    db: DatabaseConnection,
    /// Key inserts and purges ([`crate::platform::db::Database::writes`]).
    writer: DatabaseConnection,
    clock: Arc<dyn Clock>,
    master_key: MasterKey,
    settings: KeySettings,
    algorithm: SigningAlgorithm,
    token_ttl: Duration,
    cache: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    /// Loads the keys, creating the first one (active at once) if there is none.
    pub async fn load_or_create(
        db: &crate::platform::db::Database,
        clock: Arc<dyn Clock>,
        master_key: MasterKey,
        settings: KeySettings,
        algorithm: SigningAlgorithm,
        token_ttl: Duration,
    ) -> Result<Self> {
        let now = clock.now();
        let ring = Self {
            db: db.reads().clone(),
            writer: db.writes().clone(),
            clock,
            master_key,
            settings,
            algorithm,
            token_ttl,
            cache: RwLock::new(Arc::new(KeySet {
                keys: Vec::new(),
                loaded_at: now,
            })),
        };
        if signing_keys::Entity::find().one(&ring.db).await?.is_none() {
            // Nobody can have cached a JWKS yet: the first key signs at once.
            if let Some(key) = ring.insert_key(1, now).await? {
                tracing::info!(kid = %key.kid, algorithm = %key.algorithm, "generated the first signing key");
            }
        }
        ring.reload().await?;
        Ok(ring)
    }

    /// Signs `claims` with the active key.
    pub(crate) async fn sign<T: Serialize>(&self, header_type: &str, claims: &T) -> Result<String> {
        self.sign_with(header_type, |_| claims).await
    }

    /// Signs the claims that `claims_for` makes for the active key's algorithm (an ID
    /// token's `at_hash` depends on it).
    pub(crate) async fn sign_with<T: Serialize>(
        &self,
        header_type: &str,
        claims_for: impl FnOnce(SigningAlgorithm) -> T,
    ) -> Result<String> {
        let set = self.key_set().await?;
        let now = self.clock.now();
        let key =
            active_key(&set.keys, now).ok_or_else(|| Error::internal("no active signing key"))?;
        let mut header = jsonwebtoken::Header::new(key.algorithm.jws());
        header.typ = Some(header_type.to_owned());
        header.kid = Some(key.row.kid.clone());
        let claims = claims_for(key.algorithm);
        jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(Error::internal)
    }

    /// The published key with this `kid`, and its algorithm.
    pub(crate) async fn verification_key(
        &self,
        kid: &str,
    ) -> Result<Option<(DecodingKey, SigningAlgorithm)>> {
        let now = self.clock.now();
        let mut set = self.key_set().await?;
        if !set.keys.iter().any(|k| k.row.kid == kid)
            && now - set.loaded_at >= UNKNOWN_KID_RELOAD_INTERVAL
        {
            set = self.reload().await?;
        }
        let published = published_keys(&set.keys, now, self.retired_lifetime());
        Ok(published
            .into_iter()
            .find(|k| k.row.kid == kid)
            .map(|k| (k.decoding.clone(), k.algorithm)))
    }

    /// The JWKS: every published key.
    pub async fn jwks(&self) -> Result<Value> {
        let set = self.key_set().await?;
        let keys: Vec<&Value> =
            published_keys(&set.keys, self.clock.now(), self.retired_lifetime())
                .into_iter()
                .map(|k| &k.jwk)
                .collect();
        Ok(json!({ "keys": keys }))
    }

    /// How long JWKS caches may keep a copy: the publish-ahead window.
    pub fn jwks_max_age(&self) -> Duration {
        self.settings.publish_ahead
    }

    /// Adds a key that starts signing after `keys.publish_ahead`. Returns `None` when a
    /// rotation is already pending (a key waits to activate), which is also what an
    /// instance sees when another one rotated at the same moment.
    pub async fn rotate(&self) -> Result<Option<KeyInfo>> {
        let now = self.clock.now();
        let newest = signing_keys::Entity::find()
            .order_by_desc(signing_keys::Column::Generation)
            .one(&self.db)
            .await?;
        if newest.as_ref().is_some_and(|k| k.activates_at > now) {
            return Ok(None);
        }
        let generation = newest.map_or(1, |k| k.generation + 1);
        let activates_at = now + to_chrono(self.settings.publish_ahead);
        let inserted = self.insert_key(generation, activates_at).await?;
        let set = self.reload().await?;
        Ok(inserted.and_then(|row| {
            set.keys
                .iter()
                .find(|k| k.row.kid == row.kid)
                .map(|k| key_info(k, &set.keys, now, self.retired_lifetime()))
        }))
    }

    /// Rotates when the newest key is `keys.rotate_every` old (counted from when it
    /// activated) or uses another algorithm than `tokens.signing_alg`.
    pub async fn rotate_if_due(&self) -> Result<Option<KeyInfo>> {
        let set = self.reload().await?;
        let now = self.clock.now();
        let Some(newest) = set.keys.last() else {
            return self.rotate().await;
        };
        let due_at = newest.row.activates_at + to_chrono(self.settings.rotate_every)
            - to_chrono(self.settings.publish_ahead);
        if now >= due_at || newest.algorithm != self.algorithm {
            let rotated = self.rotate().await?;
            if let Some(key) = &rotated {
                tracing::info!(kid = %key.kid, activates_at = %key.activates_at, "signing key rotation scheduled");
            }
            return Ok(rotated);
        }
        Ok(None)
    }

    /// Every stored key with its state.
    pub async fn list(&self) -> Result<Vec<KeyInfo>> {
        let set = self.reload().await?;
        let now = self.clock.now();
        Ok(set
            .keys
            .iter()
            .map(|k| key_info(k, &set.keys, now, self.retired_lifetime()))
            .collect())
    }

    /// Deletes keys that are no longer published.
    pub async fn purge_expired(&self) -> Result<u64> {
        let keys = self.list().await?;
        let expired: Vec<String> = keys
            .into_iter()
            .filter(|k| k.state == KeyState::Expired)
            .map(|k| k.kid)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let deleted = signing_keys::Entity::delete_many()
            .filter(signing_keys::Column::Kid.is_in(expired))
            .exec(&self.writer)
            .await?
            .rows_affected;
        self.reload().await?;
        Ok(deleted)
    }

    fn retired_lifetime(&self) -> chrono::Duration {
        to_chrono(self.token_ttl) + RETIRED_KEY_MARGIN
    }

    /// The cached key set, reread when older than `keys.reload_interval`.
    async fn key_set(&self) -> Result<Arc<KeySet>> {
        let cached = self.cache.read().unwrap_or_else(|p| p.into_inner()).clone();
        if self.clock.now() - cached.loaded_at >= to_chrono(self.settings.reload_interval) {
            return self.reload().await;
        }
        Ok(cached)
    }

    async fn reload(&self) -> Result<Arc<KeySet>> {
        let rows = signing_keys::Entity::find()
            .order_by_asc(signing_keys::Column::Generation)
            .all(&self.db)
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            keys.push(Arc::new(self.load_key(row)?));
        }
        let set = Arc::new(KeySet {
            keys,
            loaded_at: self.clock.now(),
        });
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = set.clone();
        Ok(set)
    }

    fn load_key(&self, row: signing_keys::Model) -> Result<LoadedKey> {
        let algorithm = SigningAlgorithm::from_stored(&row.algorithm).ok_or_else(|| {
            Error::internal(format!("signing key {} has unknown algorithm", row.kid))
        })?;
        let pkcs8 = self
            .master_key
            .open(&row.private_key_encrypted, row.kid.as_bytes())?;
        let encoding = match algorithm {
            SigningAlgorithm::RS256 => {
                let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8));
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(Error::internal)?
            }
            SigningAlgorithm::ES256 => EncodingKey::from_ec_der(&pkcs8),
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(&pkcs8),
        };
        let jwk: Value = serde_json::from_str(&row.public_jwk).map_err(Error::internal)?;
        let parsed: Jwk = serde_json::from_value(jwk.clone()).map_err(Error::internal)?;
        let decoding = DecodingKey::from_jwk(&parsed).map_err(Error::internal)?;
        Ok(LoadedKey {
            row,
            algorithm,
            jwk,
            encoding,
            decoding,
        })
    }

    /// Generates and stores a key; `None` if that generation exists already.
    async fn insert_key(
        &self,
        generation: i64,
        activates_at: DateTime<Utc>,
    ) -> Result<Option<signing_keys::Model>> {
        let (pkcs8, public_jwk) = generate_key(self.algorithm)?;
        let kid = thumbprint(&public_jwk);
        let mut jwk = public_jwk;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.algorithm.as_str());
        let sealed = self.master_key.seal(&pkcs8, kid.as_bytes())?;
        let inserted = signing_keys::ActiveModel {
            kid: Set(kid),
            generation: Set(generation),
            algorithm: Set(self.algorithm.as_str().to_owned()),
            public_jwk: Set(jwk.to_string()),
            private_key_encrypted: Set(sealed),
            created_at: Set(self.clock.now()),
            activates_at: Set(activates_at),
        }
        .insert(&self.writer)
        .await;
        match inserted {
            Ok(row) => Ok(Some(row)),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The key that signs at `now`: the latest activation that has passed.
fn active_key(keys: &[Arc<LoadedKey>], now: DateTime<Utc>) -> Option<&Arc<LoadedKey>> {
    keys.iter()
        .filter(|k| k.row.activates_at <= now)
        .max_by_key(|k| (k.row.activates_at, k.row.generation))
}

/// When `key` stopped signing: its successor's activation.
fn retires_at(key: &LoadedKey, keys: &[Arc<LoadedKey>]) -> Option<DateTime<Utc>> {
    keys.iter()
        .filter(|k| k.row.generation > key.row.generation)
        .map(|k| k.row.activates_at)
        .min()
}

fn key_state(
    key: &LoadedKey,
    keys: &[Arc<LoadedKey>],
    now: DateTime<Utc>,
    retired_lifetime: chrono::Duration,
) -> KeyState {
    if key.row.activates_at > now {
        return KeyState::Next;
    }
    match retires_at(key, keys) {
        Some(retired) if retired <= now => {
            if retired + retired_lifetime > now {
                KeyState::Retired
            } else {
                KeyState::Expired
            }
        }
        _ => KeyState::Active,
    }
}

fn published_keys(
    keys: &[Arc<LoadedKey>],
    now: DateTime<Utc>,
    retired_lifetime: chrono::Duration,
) -> Vec<&Arc<LoadedKey>> {
    keys.iter()
        .filter(|k| key_state(k, keys, now, retired_lifetime) != KeyState::Expired)
        .collect()
}

fn key_info(
    key: &LoadedKey,
    keys: &[Arc<LoadedKey>],
    now: DateTime<Utc>,
    retired_lifetime: chrono::Duration,
) -> KeyInfo {
    let retires_at = retires_at(key, keys);
    KeyInfo {
        kid: key.row.kid.clone(),
        generation: key.row.generation,
        algorithm: key.row.algorithm.clone(),
        state: key_state(key, keys, now, retired_lifetime),
        created_at: key.row.created_at,
        activates_at: key.row.activates_at,
        retires_at,
        unpublished_at: retires_at.map(|r| r + retired_lifetime),
    }
}

/// A new key pair: its PKCS#8 document and its public JWK (without `kid`, `use`, `alg`).
fn generate_key(algorithm: SigningAlgorithm) -> Result<(Vec<u8>, Value)> {
    let failed = |_| Error::internal("key generation failed");
    match algorithm {
        SigningAlgorithm::RS256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let pkcs8 = pair.as_der().map_err(failed)?;
            let public = pair.public_key();
            let jwk = json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            });
            Ok((pkcs8.as_ref().to_vec(), jwk))
        }
        SigningAlgorithm::ES256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(failed)?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .map_err(|_| Error::internal("key generation failed"))?;
            // Uncompressed point: 0x04 || x || y.
            let point = pair.public_key().as_ref();
            let jwk = json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            });
            Ok((pkcs8.as_ref().to_vec(), jwk))
        }
        SigningAlgorithm::EdDSA => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(failed)?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| Error::internal("key generation failed"))?;
            let jwk = json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            Ok((pkcs8.as_ref().to_vec(), jwk))
        }
    }
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    let canonical = members
        .iter()
        .map(|m| format!("\"{m}\":{}", jwk[*m]))
        .collect::<Vec<_>>()
        .join(",");
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{canonical}}}").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_and_8037_examples() {
        // RFC 8037 appendix A.3.
        let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(
            thumbprint(&okp),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        // RFC 7638 section 3.1.
        let rsa = json!({
            "kty": "RSA",
            "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(
            thumbprint(&rsa),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        let ec = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": "jJ6Flys3zK9jUhnOHf6G49Dyp5hah6CNP84-gY-n9eo",
            "y": "nhI6iD5eFXgBTLt_1p3aip-5VbZeMhxeFSpjfEAf7Ww"
        });
        assert_eq!(
            thumbprint(&ec),
            "w9eYdC6_s_tLQ8lH6PUpc0mddazaqtPgeC2IgWDiqY8"
        );
    }

    #[test]
    fn generated_keys_sign_and_verify_for_every_algorithm() {
        for algorithm in SigningAlgorithm::ALL {
            let (pkcs8, mut jwk) = generate_key(algorithm).unwrap();
            jwk["alg"] = json!(algorithm.as_str());
            let encoding = match algorithm {
                SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(
                    pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8)).as_bytes(),
                )
                .unwrap(),
                SigningAlgorithm::ES256 => EncodingKey::from_ec_der(&pkcs8),
                SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(&pkcs8),
            };
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(algorithm.jws()),
                &json!({"sub": "x", "exp": 4102444800u64}),
                &encoding,
            )
            .unwrap();
            let decoding = DecodingKey::from_jwk(&serde_json::from_value(jwk).unwrap()).unwrap();
            let mut validation = jsonwebtoken::Validation::new(algorithm.jws());
            validation.validate_aud = false;
            jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
        }
    }
}
