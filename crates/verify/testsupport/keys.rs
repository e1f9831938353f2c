//! Signing keys made on the spot for the unit tests and the benchmarks (one file, included by
//! both with `#[path]`): a key pair per algorithm, its public JWK with an RFC 7638 `kid`, and
//! helpers to sign claims the way Gatehouse does.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://id.example.test";
pub const AUDIENCE: &str = "notes-api";

/// A private key for signing and the public JWK a verifier trusts.
pub struct TestKey {
    pub alg: Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
    /// The public key as SubjectPublicKeyInfo DER (what an attacker would reuse as an HMAC
    /// secret).
    pub public_der: Vec<u8>,
}

impl TestKey {
    /// An RSA 2048 key for RS256.
    pub fn rs256() -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).expect("RSA key");
        let pkcs8: Pkcs8V1Der<'static> = pair.as_der().expect("PKCS#8");
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
            .expect("RSA PEM");
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let spki: PublicKeyX509Der<'static> = pair.public_key().as_der().expect("SPKI");
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
        });
        Self::new(Algorithm::RS256, encoding, jwk, spki.as_ref().to_vec())
    }

    /// A P-256 key for ES256.
    pub fn es256() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC key");
        let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8");
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let point = pair.public_key().as_ref();
        assert_eq!(point.len(), 65, "uncompressed P-256 point");
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "use": "sig",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        Self::new(Algorithm::ES256, encoding, jwk, point.to_vec())
    }

    /// An Ed25519 key for EdDSA.
    pub fn eddsa() -> Self {
        let pair = Ed25519KeyPair::generate().expect("Ed25519 key");
        let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8");
        let encoding = EncodingKey::from_ed_der(pkcs8.as_ref());
        let public = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "use": "sig",
            "alg": "EdDSA",
            "x": URL_SAFE_NO_PAD.encode(public),
        });
        Self::new(Algorithm::EdDSA, encoding, jwk, public.to_vec())
    }

    fn new(alg: Algorithm, encoding: EncodingKey, jwk: Value, public_der: Vec<u8>) -> Self {
        let mut jwk: Jwk = serde_json::from_value(jwk).expect("JWK");
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        Self {
            alg,
            kid,
            encoding,
            jwk,
            public_der,
        }
    }

    /// The header Gatehouse puts on access tokens.
    pub fn header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        header
    }

    /// Signs `claims` as an access token.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }

    /// Signs `claims` under any header.
    pub fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("signing")
    }
}

/// A JWK set publishing these keys.
pub fn jwks(keys: &[&TestKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|key| key.jwk.clone()).collect(),
    }
}

/// The claims of a fresh user access token valid for 15 minutes.
pub fn user_claims(sid: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": "0190f1c2-0000-7000-8000-000000000001",
        "aud": AUDIENCE,
        "exp": now + 900,
        "iat": now,
        "nbf": now,
        "jti": "0190f1c2-0000-7000-8000-0000000000aa",
        "client_id": "notes-web",
        "sid": sid,
        "scope": "openid notes:read",
        "role": "user",
        "tenant": "acme",
    })
}

#[expect(
    clippy::disallowed_methods,
    reason = "tokens for the verifier, which checks them against the wall clock (verifier::now_unix)"
)]
pub fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit i64")
}

/// Raw JWS compact serialisation of arbitrary header and payload JSON with a given signature,
/// for tokens no honest signer would make.
pub fn raw_token(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
