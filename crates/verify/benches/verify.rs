//! Local verification cost per algorithm: `verify_cached` against a static key set, i.e. the
//! work an app does per request once the keys are cached (header checks, key lookup,
//! signature, claims, revocation lookup).
//!
//! Beside it, the two bounds it is measured against: the raw signature cost of each
//! algorithm through `jsonwebtoken` alone (`sign`: what the server pays per issued token;
//! `raw_verify`: decode and signature check with no cache, revocation or extra claims).
//! `tests/load/bench.py` reads criterion's estimates of all three groups.
//!
//! `cargo bench -p gatehouse-verify --bench verify -- --quick`

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_verify::Verifier;
use jsonwebtoken::{DecodingKey, Validation};

#[expect(dead_code, reason = "shared with the unit tests, which use more of it")]
#[path = "../testsupport/keys.rs"]
mod keys;

use keys::{AUDIENCE, ISSUER, TestKey, jwks, user_claims};

fn local_verification(c: &mut Criterion) {
    let keys = [TestKey::rs256(), TestKey::es256(), TestKey::eddsa()];
    let verifier = Verifier::builder(ISSUER)
        .audience(AUDIENCE)
        .build_with_jwks(jwks(&keys.iter().collect::<Vec<_>>()))
        .expect("verifier");
    // A few revoked sessions, as in production: the lookup is part of the cost.
    for n in 0..100 {
        verifier.revoke_session_locally(&format!("0190f1c2-0000-7000-8000-{n:012}"), i64::MAX);
    }
    let mut group = c.benchmark_group("verify_cached");
    for key in &keys {
        let token = key.sign(&user_claims("0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f"));
        verifier.verify_cached(&token).expect("the token verifies");
        group.bench_function(format!("{:?}", key.alg), |b| {
            b.iter(|| verifier.verify_cached(black_box(&token)));
        });
    }
    group.finish();
}

/// The bounds: `jsonwebtoken` signing and verifying the same tokens, nothing else.
fn raw_signatures(c: &mut Criterion) {
    let keys = [TestKey::rs256(), TestKey::es256(), TestKey::eddsa()];
    let claims = user_claims("0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f");
    let mut sign = c.benchmark_group("sign");
    for key in &keys {
        sign.bench_function(format!("{:?}", key.alg), |b| {
            b.iter(|| key.sign(black_box(&claims)));
        });
    }
    sign.finish();
    let mut verify = c.benchmark_group("raw_verify");
    for key in &keys {
        let token = key.sign(&claims);
        let decoding = DecodingKey::from_jwk(&key.jwk).expect("decoding key");
        let mut validation = Validation::new(key.alg);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation)
            .expect("the token verifies");
        verify.bench_function(format!("{:?}", key.alg), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding, &validation)
            });
        });
    }
    verify.finish();
}

criterion_group!(benches, local_verification, raw_signatures);
criterion_main!(benches);
