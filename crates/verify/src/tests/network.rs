//! The network paths against a stand-in issuer: discovery, refetch on unknown `kid`,
//! introspection, the revocation feed (JSON and Server-Sent Events).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::KEYS;
use super::mock_issuer::MockIssuer;
use crate::test_keys::{AUDIENCE, TestKey, jwks, now, user_claims};
use crate::{Verifier, VerifierBuilder, VerifyError};

const CLIENT_ID: &str = "notes api";
const CLIENT_SECRET: &str = "s:cr%t";
const SID: &str = "0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f";

/// How the issuer expects our client to authenticate: each part form-urlencoded first.
fn expected_authorization() -> String {
    format!("Basic {}", STANDARD.encode("notes+api:s%3Acr%25t"))
}

fn published(keys: &[&TestKey]) -> Value {
    serde_json::to_value(jwks(keys)).unwrap()
}

async fn issuer(keys: &[&TestKey]) -> MockIssuer {
    MockIssuer::start(published(keys), expected_authorization()).await
}

fn builder(issuer: &MockIssuer) -> VerifierBuilder {
    Verifier::builder(&issuer.base_url).audience(AUDIENCE)
}

/// A token from the stand-in issuer.
fn token(issuer: &MockIssuer, key: &TestKey, sid: &str) -> String {
    let mut claims = user_claims(sid);
    claims["iss"] = json!(issuer.base_url);
    key.sign(&claims)
}

/// Waits for `condition` without sleeping blindly: gives up after 10 s.
#[expect(
    clippy::disallowed_methods,
    reason = "polls a watcher fed by a real socket, with no clock to move"
)]
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn discovery_fetches_the_keys_and_checks_the_issuer() {
    let issuer = issuer(&[&KEYS.rs256, &KEYS.eddsa]).await;
    let verifier = builder(&issuer).discover().await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 1);
    let mut kids = vec![KEYS.rs256.kid.clone(), KEYS.eddsa.kid.clone()];
    kids.sort();
    assert_eq!(verifier.key_ids(), kids);
    assert!(
        verifier
            .verify(&token(&issuer, &KEYS.eddsa, SID))
            .await
            .is_ok()
    );

    // A trailing slash on either side is the same issuer.
    let with_slash = Verifier::builder(format!("{}/", issuer.base_url))
        .audience(AUDIENCE)
        .discover()
        .await
        .unwrap();
    assert!(
        with_slash
            .verify(&token(&issuer, &KEYS.rs256, SID))
            .await
            .is_ok()
    );

    issuer.set_jwks_status(500);
    assert!(matches!(
        builder(&issuer).discover().await,
        Err(VerifyError::Fetch(_))
    ));

    issuer.set_jwks_status(200);
    issuer.set_discovery_issuer("https://impostor.example.test");
    assert!(matches!(
        builder(&issuer).discover().await,
        Err(VerifyError::Config(_))
    ));
    let unreachable = Verifier::builder("http://127.0.0.1:9")
        .audience(AUDIENCE)
        .discover()
        .await;
    assert!(
        matches!(unreachable, Err(VerifyError::Fetch(_))),
        "{unreachable:?}"
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_at_most_once_per_interval() {
    let issuer = issuer(&[&KEYS.rs256]).await;
    let eager = builder(&issuer)
        .min_refetch_interval(Duration::ZERO)
        .discover()
        .await
        .unwrap();
    let patient = builder(&issuer).discover().await.unwrap(); // 5 s interval
    assert_eq!(issuer.jwks_fetches(), 2);

    // The issuer publishes a new key and starts signing with it.
    issuer.set_jwks(published(&[&KEYS.rs256, &KEYS.es256]));
    let new_token = token(&issuer, &KEYS.es256, SID);
    assert_eq!(
        eager.verify_cached(&new_token),
        Err(VerifyError::UnknownKey),
        "the cached path never fetches"
    );
    assert_eq!(issuer.jwks_fetches(), 2);
    assert!(eager.verify(&new_token).await.is_ok());
    assert_eq!(issuer.jwks_fetches(), 3);
    assert!(
        eager.verify_cached(&new_token).is_ok(),
        "the new key is cached"
    );

    // Within the interval the patient verifier does not ask again, however many tokens come.
    for _ in 0..3 {
        assert_eq!(
            patient.verify(&new_token).await,
            Err(VerifyError::UnknownKey)
        );
    }
    assert_eq!(issuer.jwks_fetches(), 3);
    // An explicit refresh ignores the interval.
    patient.refresh_keys().await.unwrap();
    assert!(patient.verify_cached(&new_token).is_ok());

    // A kid the issuer never published stays unknown after the refetch.
    let stranger = token(&issuer, &KEYS.eddsa, SID);
    assert_eq!(eager.verify(&stranger).await, Err(VerifyError::UnknownKey));

    // Keys the issuer withdrew are gone after a refetch.
    issuer.set_jwks(published(&[&KEYS.es256]));
    eager.refresh_keys().await.unwrap();
    assert_eq!(
        eager.verify(&token(&issuer, &KEYS.rs256, SID)).await,
        Err(VerifyError::UnknownKey)
    );

    // When the key set cannot be fetched, `verify` says so.
    issuer.set_jwks_status(503);
    assert!(matches!(
        eager.verify(&stranger).await,
        Err(VerifyError::Fetch(_))
    ));
}

#[tokio::test]
async fn introspection_authenticates_and_is_the_fallback_for_unknown_keys() {
    let issuer = issuer(&[&KEYS.rs256]).await;
    let verifier = builder(&issuer)
        .min_refetch_interval(Duration::ZERO)
        .introspection(CLIENT_ID, CLIENT_SECRET)
        .discover()
        .await
        .unwrap();
    // Signed by a key this verifier cannot get.
    let unknown = token(&issuer, &KEYS.eddsa, SID);
    let mut active = user_claims(SID);
    active["iss"] = json!(issuer.base_url);
    active["active"] = json!(true);

    issuer.set_introspection(active.clone());
    let answer = verifier.introspect(&unknown).await.unwrap();
    assert!(answer.active);
    assert_eq!(issuer.introspection_bodies(), [format!("token={unknown}")]);

    let claims = verifier.verify_or_introspect(&unknown).await.unwrap();
    assert_eq!(claims.sid.as_deref(), Some(SID));
    assert_eq!(
        verifier.verify(&unknown).await,
        Err(VerifyError::UnknownKey),
        "plain verify never introspects"
    );

    issuer.set_introspection(json!({"active": false}));
    assert_eq!(
        verifier.verify_or_introspect(&unknown).await,
        Err(VerifyError::Inactive)
    );

    let mut elsewhere = active.clone();
    elsewhere["aud"] = json!("billing-api");
    issuer.set_introspection(elsewhere);
    assert_eq!(
        verifier.verify_or_introspect(&unknown).await,
        Err(VerifyError::WrongAudience)
    );
    let mut foreign = active.clone();
    foreign["iss"] = json!("https://impostor.example.test");
    issuer.set_introspection(foreign);
    assert_eq!(
        verifier.verify_or_introspect(&unknown).await,
        Err(VerifyError::WrongIssuer)
    );

    // A session revoked locally stays revoked whatever introspection says.
    issuer.set_introspection(active.clone());
    verifier.revoke_session_locally(SID, now() + 900);
    assert_eq!(
        verifier.verify_or_introspect(&unknown).await,
        Err(VerifyError::Revoked)
    );

    // Tokens refused locally for any other reason are never introspected.
    let before = issuer.introspection_bodies().len();
    let mut expired = user_claims("0190f1c2-7e4b-7c3a-9a51-000000000001");
    expired["iss"] = json!(issuer.base_url);
    expired["exp"] = json!(now() - 3600);
    assert_eq!(
        verifier
            .verify_or_introspect(&KEYS.rs256.sign(&expired))
            .await,
        Err(VerifyError::Expired)
    );
    assert_eq!(issuer.introspection_bodies().len(), before);

    // The key set cannot be fetched: introspection answers instead.
    issuer.set_jwks_status(500);
    let other_sid = "0190f1c2-7e4b-7c3a-9a51-000000000002";
    let mut other = active;
    other["sid"] = json!(other_sid);
    issuer.set_introspection(other);
    assert!(
        verifier
            .verify_or_introspect(&token(&issuer, &KEYS.eddsa, other_sid))
            .await
            .is_ok()
    );

    // Wrong credentials: the issuer refuses, and we say we could not ask.
    let impostor = builder(&issuer)
        .introspection(CLIENT_ID, "wrong")
        .introspection_endpoint(format!("{}/introspect", issuer.base_url))
        .build_with_jwks(jwks(&[]))
        .unwrap();
    assert!(matches!(
        impostor.introspect(&unknown).await,
        Err(VerifyError::Fetch(_))
    ));
    let unconfigured = builder(&issuer).build_with_jwks(jwks(&[])).unwrap();
    assert!(matches!(
        unconfigured.introspect(&unknown).await,
        Err(VerifyError::Config(_))
    ));
    assert_eq!(
        unconfigured.verify_or_introspect(&unknown).await,
        Err(VerifyError::UnknownKey)
    );
}

#[tokio::test]
async fn the_watcher_applies_backlog_and_live_revocations_and_resumes_after_a_drop() {
    let issuer = issuer(&[&KEYS.es256]).await;
    let verifier = builder(&issuer).discover().await.unwrap();
    let in_backlog = "0190f1c2-7e4b-7c3a-9a51-00000000000a";
    let live = "0190f1c2-7e4b-7c3a-9a51-00000000000b";
    let while_away = "0190f1c2-7e4b-7c3a-9a51-00000000000c";
    let expires = now() + 900;
    issuer.revoke(in_backlog, expires);
    // Long expired: applied (and counted) but not remembered.
    issuer.revoke("0190f1c2-7e4b-7c3a-9a51-0000000000ff", now() - 3600);

    let watcher = verifier.watch_revocations(CLIENT_ID, CLIENT_SECRET);
    watcher.wait_connected().await;
    while !verifier.is_session_revoked(in_backlog) {
        watcher.changed().await;
    }
    assert_eq!(
        verifier
            .verify(&token(&issuer, &KEYS.es256, in_backlog))
            .await,
        Err(VerifyError::Revoked)
    );

    let token_live = token(&issuer, &KEYS.es256, live);
    assert!(verifier.verify(&token_live).await.is_ok());
    issuer.revoke(live, expires);
    while !verifier.is_session_revoked(live) {
        watcher.changed().await;
    }
    assert_eq!(
        verifier.verify(&token_live).await,
        Err(VerifyError::Revoked)
    );
    assert_eq!(watcher.last_event_id().as_deref(), Some("3"));
    assert_eq!(verifier.revoked_session_count(), 2);

    // The connection drops; a revocation happens meanwhile; the watcher catches up from where
    // it was.
    issuer.drop_streams();
    issuer.revoke(while_away, expires);
    while !verifier.is_session_revoked(while_away) {
        watcher.changed().await;
    }
    assert!(watcher.connected());
    assert_eq!(issuer.stream_connections(), [None, Some("3".to_owned())]);

    watcher.stop();
    assert!(!watcher.connected());
}

#[tokio::test]
async fn the_watcher_reports_refused_credentials_and_keeps_trying() {
    let issuer = issuer(&[&KEYS.es256]).await;
    let verifier = builder(&issuer).discover().await.unwrap();
    let watcher = verifier.watch_revocations(CLIENT_ID, "wrong");
    eventually("an error", || watcher.last_error().is_some()).await;
    assert!(!watcher.connected());
    assert!(
        watcher.last_error().unwrap().contains("401"),
        "{:?}",
        watcher.last_error()
    );
    drop(watcher);
}

#[tokio::test]
async fn sync_reads_the_json_feed_page_by_page() {
    let issuer = issuer(&[&KEYS.es256]).await;
    let verifier = builder(&issuer).discover().await.unwrap();
    let sids: Vec<String> = (1..=3)
        .map(|n| format!("0190f1c2-7e4b-7c3a-9a51-00000000010{n}"))
        .collect();
    for sid in &sids {
        issuer.revoke(sid, now() + 900);
    }
    let cursor = verifier
        .sync_revocations(CLIENT_ID, CLIENT_SECRET, None)
        .await
        .unwrap();
    assert_eq!(cursor, Some(3));
    assert!(sids.iter().all(|sid| verifier.is_session_revoked(sid)));

    assert_eq!(
        verifier
            .sync_revocations(CLIENT_ID, CLIENT_SECRET, cursor)
            .await
            .unwrap(),
        Some(3)
    );
    let later = "0190f1c2-7e4b-7c3a-9a51-000000000200";
    issuer.revoke(later, now() + 900);
    assert_eq!(
        verifier
            .sync_revocations(CLIENT_ID, CLIENT_SECRET, cursor)
            .await
            .unwrap(),
        Some(4)
    );
    assert!(verifier.is_session_revoked(later));

    assert!(matches!(
        verifier.sync_revocations(CLIENT_ID, "wrong", None).await,
        Err(VerifyError::Fetch(_))
    ));
}
