//! Local verification cost per algorithm: `verify_cached` against a static key set, i.e. the
//! work an app does per request once the keys are cached (header checks, key lookup,
//! signature, claims, revocation lookup).
//!
//! `cargo bench -p gatehouse-verify --bench verify -- --quick`

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_verify::Verifier;

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

criterion_group!(benches, local_verification);
criterion_main!(benches);
