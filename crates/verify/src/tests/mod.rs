//! Unit tests: everything a verifier decides, with keys made on the spot and, for the network
//! paths, a stand-in issuer on 127.0.0.1.

use std::sync::LazyLock;

use crate::test_keys::{AUDIENCE, ISSUER, TestKey, jwks};
use crate::{Verifier, VerifierBuilder};

#[cfg(feature = "actix")]
mod actix_extractor;
mod local;
mod mock_issuer;
mod network;
mod properties;

/// One key per algorithm, made once for the whole test binary (RSA generation is slow).
pub struct Keys {
    pub rs256: TestKey,
    pub es256: TestKey,
    pub eddsa: TestKey,
}

pub static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    rs256: TestKey::rs256(),
    es256: TestKey::es256(),
    eddsa: TestKey::eddsa(),
});

impl Keys {
    pub fn all(&self) -> [&TestKey; 3] {
        [&self.rs256, &self.es256, &self.eddsa]
    }
}

pub fn builder() -> VerifierBuilder {
    Verifier::builder(ISSUER).audience(AUDIENCE)
}

/// A verifier trusting the three test keys.
pub fn verifier() -> Verifier {
    builder().build_with_jwks(jwks(&KEYS.all())).unwrap()
}
