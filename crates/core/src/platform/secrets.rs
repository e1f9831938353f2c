//! Random tokens, their hashes, and the master key that encrypts signing keys at rest.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// Bytes of entropy in every token this server hands out (256 bits).
const TOKEN_BYTES: usize = 32;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| Error::internal("the system random generator failed"))
}

/// A new opaque token (256 random bits, base64url) and the hash to store for it.
pub fn new_token() -> Result<(SecretString, String)> {
    let mut bytes = [0u8; TOKEN_BYTES];
    fill_random(&mut bytes)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    Ok((SecretString::from(token), hash))
}

/// The hex SHA-256 under which a token is stored and looked up. Tokens carry 256 bits of
/// entropy, so a fast hash is the right protection; the hash is never logged either.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The 256-bit key that encrypts signing keys at rest (AES-256-GCM), and from which the
/// key that signs session cookies and the [`KeyedHashes`] keys are derived.
pub struct MasterKey {
    sealing: LessSafeKey,
    cookie_key: [u8; 64],
    derivation: aws_lc_rs::hmac::Key,
}

/// HMAC-SHA256 under keys derived from the master key, for values that are stored or
/// sent and must not be recomputable by someone who reads the database: the keys of
/// throttling and mail cooldown counters (an unkeyed hash of an address is reversed by
/// guessing addresses), the CSRF tokens of the hosted pages (the database holds only
/// the seed they are derived from) and the signatures of login device tokens.
pub struct KeyedHashes {
    lookup: aws_lc_rs::hmac::Key,
    csrf: aws_lc_rs::hmac::Key,
    device: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for KeyedHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHashes(..)")
    }
}

impl KeyedHashes {
    /// The hex key under which a counter about `value` is stored, e.g.
    /// `lookup_key("email", "ann@example.com")`.
    pub fn lookup_key(&self, kind: &str, value: &str) -> String {
        let message = format!("{kind}:{value}");
        hex::encode(aws_lc_rs::hmac::sign(&self.lookup, message.as_bytes()))
    }

    /// The CSRF token of a browser session whose state holds `seed`.
    pub fn csrf_token(&self, seed: &str) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&self.csrf, seed.as_bytes()))
    }

    /// The signature (base64url HMAC-SHA256) of a login device token's payload.
    pub fn device_token_signature(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&self.device, payload.as_bytes()))
    }

    /// Whether `signature` is the signature of `payload`, compared in constant time.
    pub fn device_token_signature_matches(&self, payload: &str, signature: &str) -> bool {
        URL_SAFE_NO_PAD.decode(signature).is_ok_and(|tag| {
            aws_lc_rs::hmac::verify(&self.device, payload.as_bytes(), &tag).is_ok()
        })
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Why a master key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("it is not valid base64")]
    NotBase64,
    #[error("it decodes to {0} bytes; 32 are needed")]
    WrongLength(usize),
}

impl MasterKey {
    /// Parses a base64 (standard alphabet) encoding of exactly 32 bytes.
    pub fn from_base64(encoded: &SecretString) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD
            .decode(encoded.expose_secret().trim())
            .map_err(|_| MasterKeyError::NotBase64)?;
        if bytes.len() != 32 {
            return Err(MasterKeyError::WrongLength(bytes.len()));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| MasterKeyError::WrongLength(bytes.len()))?;
        // HMAC-SHA512 as a key derivation function: a different key for a different use.
        let derivation = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, &bytes);
        let tag = aws_lc_rs::hmac::sign(&derivation, b"gatehouse session cookie signing key");
        let mut cookie_key = [0u8; 64];
        cookie_key.copy_from_slice(tag.as_ref());
        Ok(Self {
            sealing: LessSafeKey::new(key),
            cookie_key,
            derivation,
        })
    }

    /// The keys of [`KeyedHashes`], each derived for its own use.
    pub fn keyed_hashes(&self) -> KeyedHashes {
        let derive = |label: &[u8]| {
            let tag = aws_lc_rs::hmac::sign(&self.derivation, label);
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &tag.as_ref()[..32])
        };
        KeyedHashes {
            lookup: derive(b"gatehouse counter lookup key"),
            csrf: derive(b"gatehouse csrf token key"),
            device: derive(b"gatehouse login device token key"),
        }
    }

    /// 64 bytes derived from the master key, for signing the hosted pages' session cookie.
    pub fn cookie_signing_key(&self) -> &[u8; 64] {
        &self.cookie_key
    }

    /// A fresh random key, base64-encoded, for development set-ups.
    pub fn generate_base64() -> Result<SecretString> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        Ok(SecretString::from(STANDARD.encode(bytes)))
    }

    /// Encrypts `plaintext`; the output is the nonce followed by ciphertext and tag.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.sealing, plaintext, context)
    }

    /// Decrypts what [`MasterKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        open_with(&self.sealing, sealed, context).map_err(|_| {
            Error::internal("a signing key does not decrypt under the configured master key")
        })
    }

    /// An AES-256-GCM key for one kind of data at rest, derived from the master key under
    /// `label` (HMAC-SHA512, first 32 bytes): data sealed under it does not open under the
    /// master key itself, nor under a key derived for another use.
    pub fn derive_sealing_key(&self, label: &[u8]) -> Result<SealingKey> {
        let tag = aws_lc_rs::hmac::sign(&self.derivation, label);
        let key = UnboundKey::new(&AES_256_GCM, &tag.as_ref()[..32])
            .map_err(|_| Error::internal("key derivation failed"))?;
        Ok(SealingKey(LessSafeKey::new(key)))
    }
}

/// The keys the domain derives from the master key: [`KeyedHashes`], and the key that
/// seals TOTP secrets.
pub struct DerivedKeys {
    pub hashes: KeyedHashes,
    pub totp: SealingKey,
}

impl MasterKey {
    /// The keys [`crate::Gatehouse`] works with, each derived for its own use.
    pub fn derived_keys(&self) -> Result<DerivedKeys> {
        Ok(DerivedKeys {
            hashes: self.keyed_hashes(),
            totp: self.derive_sealing_key(b"gatehouse totp secret key")?,
        })
    }
}

/// An AES-256-GCM key derived from the master key for one use (see
/// [`MasterKey::derive_sealing_key`]).
pub struct SealingKey(LessSafeKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    /// Encrypts `plaintext`, bound to `context`; the output is the nonce followed by
    /// ciphertext and tag.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.0, plaintext, context)
    }

    /// Decrypts what [`SealingKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        open_with(&self.0, sealed, context)
    }
}

fn seal_with(key: &LessSafeKey, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(context),
        &mut sealed,
    )
    .map_err(|_| Error::internal("encryption failed"))?;
    let mut out = nonce.to_vec();
    out.append(&mut sealed);
    Ok(out)
}

fn open_with(key: &LessSafeKey, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return Err(Error::internal("sealed data too short"));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce =
        Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::internal("bad nonce"))?;
    let mut buf = ciphertext.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(context), &mut buf)
        .map_err(|_| Error::internal("sealed data does not decrypt under this key"))?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_to_what_is_stored() {
        let (a, hash_a) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(token_hash(a.expose_secret()), hash_a);
        assert_eq!(a.expose_secret().len(), 43, "256 bits in base64url");
    }

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let other = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let sealed = key.seal(b"private", b"kid-1").unwrap();
        assert_eq!(key.open(&sealed, b"kid-1").unwrap(), b"private");
        assert!(key.open(&sealed, b"kid-2").is_err());
        assert!(other.open(&sealed, b"kid-1").is_err());
    }

    #[test]
    fn derived_sealing_keys_are_their_own() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let mail = key.derive_sealing_key(b"mail").unwrap();
        let sealed = mail.seal(b"private", b"row-1").unwrap();
        assert_eq!(mail.open(&sealed, b"row-1").unwrap(), b"private");
        assert!(mail.open(&sealed, b"row-2").is_err());
        assert!(
            key.open(&sealed, b"row-1").is_err(),
            "not the master key itself"
        );
        let other = key.derive_sealing_key(b"other").unwrap();
        assert!(other.open(&sealed, b"row-1").is_err());
    }

    #[test]
    fn keyed_hashes_depend_on_the_master_key_and_the_use() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let other = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let hashes = key.keyed_hashes();
        let email = hashes.lookup_key("email", "ann@example.com");
        assert_eq!(
            email,
            key.keyed_hashes().lookup_key("email", "ann@example.com")
        );
        assert_ne!(
            email,
            other.keyed_hashes().lookup_key("email", "ann@example.com")
        );
        assert_ne!(email, hashes.lookup_key("ip", "ann@example.com"));
        assert_ne!(
            email,
            token_hash("email:ann@example.com"),
            "not the unkeyed hash"
        );
        let csrf = hashes.csrf_token("seed");
        assert_ne!(csrf, other.keyed_hashes().csrf_token("seed"));
        assert_eq!(csrf.len(), 43);
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        assert!(matches!(
            MasterKey::from_base64(&SecretString::from("c2hvcnQ=")),
            Err(MasterKeyError::WrongLength(5))
        ));
        assert!(matches!(
            MasterKey::from_base64(&SecretString::from("not base64!")),
            Err(MasterKeyError::NotBase64)
        ));
    }
}
