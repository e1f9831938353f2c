//! Discovery, the JWKS, and signing-key rotation without a single failed verification.

use std::cell::Cell;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::Clock;
use gatehouse_core::tokens::keys::KeyState;
use gatehouse_tests::{Backend, TestServer, on_both_databases};
use gatehouse_verify::{UnixClock, Verifier};
use reqwest::StatusCode;
use serde_json::Value;

on_both_databases!(
    discovery_and_jwks_describe_the_server,
    verification_survives_two_rotations,
    instances_agree_on_keys_and_rotate_once,
);

fn kid_of(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(server: &TestServer) -> Vec<String> {
    let jwks: Value = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn discovery_and_jwks_describe_the_server(backend: Backend) {
    let server = TestServer::start(backend).await;
    let discovery = server
        .http
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), StatusCode::OK);
    let doc: Value = discovery.json().await.unwrap();
    let base = &server.base_url;
    assert_eq!(doc["issuer"], base.as_str());
    assert_eq!(doc["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(doc["token_endpoint"], format!("{base}/oauth2/token"));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{base}/oauth2/introspect")
    );
    assert_eq!(doc["revocation_endpoint"], format!("{base}/oauth2/revoke"));
    for field in [
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "id_token_signing_alg_values_supported",
        "scopes_supported",
        "claims_supported",
    ] {
        assert!(doc[field].is_array(), "{field}");
    }
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&"client_credentials".into())
    );
    assert!(
        doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&"client_secret_basic".into())
    );

    let jwks = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        jwks.headers()["cache-control"],
        "public, max-age=3600",
        "the publish-ahead window"
    );
    let jwks: Value = jwks.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(
        key.get("d").is_none() && key.get("p").is_none(),
        "no private parts"
    );
    let user = server
        .verified_user("jw@example.com", "jw password 1")
        .await;
    assert_eq!(kid_of(&user.access), key["kid"].as_str().unwrap());
}

async fn verification_survives_two_rotations(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .verified_user("rot@example.com", "rot password 1")
        .await;
    let clock = server.clock.clone();
    let verifier = Verifier::builder(&server.base_url)
        .audience("gatehouse")
        .min_refetch_interval(Duration::ZERO)
        .clock(UnixClock::new(move || clock.now().timestamp()))
        .discover()
        .await
        .unwrap();
    let keys = server.gatehouse.access_tokens().keys();
    let failures = Cell::new(0);
    let verified = Cell::new(0);
    let check = async |server: &TestServer| {
        let token = server
            .log_in("rot@example.com", "rot password 1")
            .await
            .access;
        match verifier.verify(&token).await {
            Ok(_) => verified.set(verified.get() + 1),
            Err(e) => {
                eprintln!("verification failed: {e}");
                failures.set(failures.get() + 1);
            }
        }
        token
    };

    let first = check(&server).await;
    let mut signing_kids = vec![kid_of(&first)];
    for _ in 0..2 {
        let next = keys.rotate().await.unwrap().expect("a new key");
        assert_eq!(next.state, KeyState::Next);
        assert!(
            jwks_kids(&server).await.contains(&next.kid),
            "published before it signs"
        );
        let before = check(&server).await;
        assert_eq!(
            &kid_of(&before),
            signing_kids.last().unwrap(),
            "the old key still signs"
        );
        server.advance(Duration::from_secs(59 * 60));
        let just_before = check(&server).await;
        server.advance(Duration::from_secs(61));
        let after = check(&server).await;
        assert_eq!(
            kid_of(&after),
            next.kid,
            "the new key signs after the publish-ahead window"
        );
        // A token of the key that just retired still verifies.
        assert!(verifier.verify(&just_before).await.is_ok());
        signing_kids.push(next.kid);
    }
    assert_eq!(
        failures.get(),
        0,
        "no verification failed across two rotations"
    );
    assert_eq!(verified.get(), 7);

    let states: Vec<(String, KeyState)> = keys
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.state))
        .collect();
    assert_eq!(
        states[0],
        (signing_kids[0].clone(), KeyState::Expired),
        "retired an hour before, unpublished"
    );
    assert_eq!(states[1], (signing_kids[1].clone(), KeyState::Retired));
    assert_eq!(states[2], (signing_kids[2].clone(), KeyState::Active));
    let published = jwks_kids(&server).await;
    assert!(
        !published.contains(&signing_kids[0]),
        "the expired key left the JWKS"
    );
    assert!(published.contains(&signing_kids[1]));

    let report = server.gatehouse.purge_expired().await.unwrap();
    assert_eq!(report.signing_keys, 1, "the unpublished key is deleted");
    assert_eq!(
        server.get_as(&first, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(
        verifier.verify(&first).await.is_err(),
        "a token of the retired, expired key is refused"
    );
}

async fn instances_agree_on_keys_and_rotate_once(backend: Backend) {
    let first = TestServer::start(backend).await;
    let second = first.another_instance().await;
    first
        .verified_user("two@example.com", "two password 1")
        .await;
    let a = first.log_in("two@example.com", "two password 1").await;
    let b = second.log_in("two@example.com", "two password 1").await;
    assert_eq!(
        kid_of(&a.access),
        kid_of(&b.access),
        "both instances sign with the same key"
    );
    assert_eq!(
        second.get_as(&a.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        first.get_as(&b.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    let (one, two) = tokio::join!(
        first.gatehouse.access_tokens().keys().rotate(),
        second.gatehouse.access_tokens().keys().rotate()
    );
    let added = [one.unwrap(), two.unwrap()].into_iter().flatten().count();
    let keys = first.gatehouse.access_tokens().keys().list().await.unwrap();
    assert_eq!(keys.len(), 1 + added);
    assert_eq!(added, 1, "two instances rotating at once add one key");
}
