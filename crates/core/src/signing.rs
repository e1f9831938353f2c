//! Access tokens: signed JWTs (RFC 9068 profile, `typ: at+jwt`), and the keys that sign
//! them. A key is generated on first start and stored in the database with its private
//! part sealed under the master key; every instance signs with the oldest stored key and
//! verifies with any stored key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use gatehouse_entity::signing_keys;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::Clock;
use crate::secrets::MasterKey;
use crate::{Error, Result};

/// The `typ` header of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Shortest time between two reloads of the key set caused by an unknown `kid`.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// The session this token belongs to.
    pub sid: Uuid,
    pub role: String,
}

struct ActiveKey {
    kid: String,
    encoding: EncodingKey,
}

struct VerifyingKeys {
    by_kid: HashMap<String, DecodingKey>,
    loaded_at: DateTime<Utc>,
}

/// Issues and checks access tokens.
pub struct AccessTokens {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    issuer: String,
    audience: String,
    ttl: Duration,
    active: ActiveKey,
    verifying: RwLock<VerifyingKeys>,
}

impl AccessTokens {
    /// Loads the signing keys, creating the first one if there is none.
    pub async fn load_or_create(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        master_key: &MasterKey,
        issuer: String,
        audience: String,
        ttl: Duration,
    ) -> Result<Self> {
        let mut keys = load_keys(&db).await?;
        if keys.is_empty() {
            let key = generate_key(master_key, clock.now())?;
            let key = key.insert(&db).await?;
            tracing::info!(kid = %key.kid, "generated the first signing key");
            keys = load_keys(&db).await?;
        }
        // The oldest key signs, so instances that started together agree on it.
        let first = keys
            .first()
            .ok_or_else(|| Error::internal("no signing key after creating one"))?;
        let pkcs8 = master_key.open(&first.private_key_encrypted, first.kid.as_bytes())?;
        let active = ActiveKey {
            kid: first.kid.clone(),
            encoding: EncodingKey::from_ed_der(&pkcs8),
        };
        let verifying = VerifyingKeys {
            by_kid: decoding_keys(&keys),
            loaded_at: clock.now(),
        };
        Ok(Self {
            db,
            clock,
            issuer,
            audience,
            ttl,
            active,
            verifying: RwLock::new(verifying),
        })
    }

    /// Lifetime of the tokens issued.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for a user's session.
    pub fn issue(&self, user_id: Uuid, session_id: Uuid, role: &str) -> Result<String> {
        let now = self.clock.now().timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: user_id.to_string(),
            aud: self.audience.clone(),
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iat: now,
            nbf: now,
            jti: Uuid::now_v7().to_string(),
            sid: session_id,
            role: role.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.active.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.active.encoding).map_err(Error::internal)
    }

    /// Checks signature, type, issuer, audience and lifetime; returns the claims.
    /// Whether the session still stands is the caller's question.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthenticated)?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(Error::Unauthenticated);
        }
        let kid = header.kid.ok_or(Error::Unauthenticated)?;
        let key = match self.decoding_key(&kid) {
            Some(key) => key,
            None => {
                self.reload_keys().await?;
                self.decoding_key(&kid).ok_or(Error::Unauthenticated)?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Lifetime is checked against the injected clock below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map_err(|_| Error::Unauthenticated)?
            .claims;
        let now = self.clock.now().timestamp();
        if claims.exp <= now || claims.nbf > now {
            return Err(Error::Unauthenticated);
        }
        Ok(claims)
    }

    fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.verifying.read().unwrap_or_else(|p| p.into_inner());
        keys.by_kid.get(kid).cloned()
    }

    async fn reload_keys(&self) -> Result<()> {
        let now = self.clock.now();
        {
            let keys = self.verifying.read().unwrap_or_else(|p| p.into_inner());
            if now - keys.loaded_at
                < chrono::Duration::from_std(KEY_RELOAD_INTERVAL).unwrap_or_default()
            {
                return Ok(());
            }
        }
        let stored = load_keys(&self.db).await?;
        let mut keys = self.verifying.write().unwrap_or_else(|p| p.into_inner());
        keys.by_kid = decoding_keys(&stored);
        keys.loaded_at = now;
        Ok(())
    }
}

async fn load_keys(db: &DatabaseConnection) -> Result<Vec<signing_keys::Model>> {
    Ok(signing_keys::Entity::find()
        .order_by_asc(signing_keys::Column::CreatedAt)
        .order_by_asc(signing_keys::Column::Kid)
        .all(db)
        .await?)
}

fn decoding_keys(keys: &[signing_keys::Model]) -> HashMap<String, DecodingKey> {
    keys.iter()
        .filter(|k| k.algorithm == "EdDSA")
        .map(|k| (k.kid.clone(), DecodingKey::from_ed_der(&k.public_key)))
        .collect()
}

fn generate_key(master_key: &MasterKey, now: DateTime<Utc>) -> Result<signing_keys::ActiveModel> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
        .map_err(|_| Error::internal("key generation failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| Error::internal("key generation failed"))?;
    let public_key = pair.public_key().as_ref().to_vec();
    let kid = ed25519_thumbprint(&public_key);
    let private_key_encrypted = master_key.seal(pkcs8.as_ref(), kid.as_bytes())?;
    Ok(signing_keys::ActiveModel {
        kid: Set(kid),
        algorithm: Set("EdDSA".to_owned()),
        public_key: Set(public_key),
        private_key_encrypted: Set(private_key_encrypted),
        created_at: Set(now),
    })
}

/// RFC 7638 thumbprint of an Ed25519 public key (RFC 8037 member names).
fn ed25519_thumbprint(public_key: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            ed25519_thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
