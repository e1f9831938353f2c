//! The revocation feed: JSON pages, the event stream, and a `gatehouse-verify` verifier
//! that learns of a revocation made on another instance within two seconds.

use std::time::Duration;

use futures_util::StreamExt;
use gatehouse_tests::{Backend, TestServer, on_both_databases};
use gatehouse_verify::{Verifier, VerifyError};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    feed_pages_list_revoked_sessions,
    verifier_refuses_a_session_revoked_on_another_instance
);

async fn feed_pages_list_revoked_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (id, secret) = server.service_client(&admin, &[]).await;
    let empty: Value = server
        .http
        .get(server.url("/api/v1/revocations"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        empty,
        json!({ "revocations": [], "next_cursor": 0 }),
        "an empty feed's cursor is a number, not null"
    );
    let user = server
        .verified_user("fd@example.com", "fd password 1")
        .await;
    let kept = server.log_in("fd@example.com", "fd password 1").await;
    server
        .post_as(&user.access, "/api/v1/logout", json!({}))
        .await;

    let feed = |after: Option<i64>| {
        let server = &server;
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            let path = after.map_or("/api/v1/revocations".to_owned(), |a| {
                format!("/api/v1/revocations?after={a}")
            });
            let response = server
                .http
                .get(server.url(&path))
                .basic_auth(&id, Some(&secret))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let page = feed(None).await;
    let entries = page["revocations"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["session_id"], user.session_id.to_string());
    let expires = entries[0]["tokens_expire_at"].as_i64().unwrap();
    let token_exp = gatehouse_tests::decode_claims(&user.access)["exp"]
        .as_i64()
        .unwrap();
    assert!(
        expires >= token_exp,
        "the entry outlives the session's last token"
    );
    let cursor = page["next_cursor"].as_i64().unwrap();
    // An idle poll hands back the cursor it was given, so a backend polling with
    // `after=<next_cursor>` never falls back to the beginning.
    let idle = feed(Some(cursor)).await;
    assert_eq!(idle["revocations"], json!([]));
    assert_eq!(idle["next_cursor"], json!(cursor));
    let again = feed(idle["next_cursor"].as_i64()).await;
    assert_eq!(again["revocations"], json!([]), "nothing is read twice");

    server
        .post_as(&kept.access, "/api/v1/logout", json!({}))
        .await;
    let next = feed(Some(cursor)).await;
    assert_eq!(
        next["revocations"][0]["session_id"],
        kept.session_id.to_string()
    );

    // Once every token of the sessions has expired, they drop out.
    server.advance(Duration::from_secs(602));
    assert_eq!(feed(None).await["revocations"], json!([]));

    let anonymous = server
        .http
        .get(server.url("/api/v1/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let public = server
        .http
        .get(server.url("/api/v1/revocations"))
        .basic_auth("gatehouse-api", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::UNAUTHORIZED);
}

async fn verifier_refuses_a_session_revoked_on_another_instance(backend: Backend) {
    let first = TestServer::start(backend).await;
    let second = first.another_instance().await;
    let admin = first.admin("root@example.com").await;
    let (id, secret) = first.service_client(&admin, &[]).await;
    let user = first
        .verified_user("sse@example.com", "sse password 1")
        .await;
    let bystander = first.log_in("sse@example.com", "sse password 1").await;

    // A raw look at the stream first: an event per revocation, in the documented format.
    let stream = first
        .http
        .get(first.url("/api/v1/revocations"))
        .basic_auth(&id, Some(&secret))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut body = stream.bytes_stream();

    let verifier = Verifier::builder(&first.base_url)
        .audience("gatehouse")
        .discover()
        .await
        .unwrap();
    let watcher = verifier.watch_revocations(&id, &secret);
    tokio::time::timeout(Duration::from_secs(10), watcher.wait_connected())
        .await
        .expect("watcher connects");
    verifier
        .verify(&user.access)
        .await
        .expect("valid before the revocation");

    let revoked = second
        .delete_as(
            &admin.access,
            &format!("/api/v1/admin/sessions/{}", user.session_id),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);

    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Err(VerifyError::Revoked) = verifier.verify(&user.access).await {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), watcher.changed()).await;
        }
    })
    .await
    .expect("the verifier refuses the revoked session's token within 2 seconds");
    eprintln!("revocation reached the verifier in {:?}", started.elapsed());
    verifier
        .verify(&bystander.access)
        .await
        .expect("other sessions are untouched");

    let chunk = tokio::time::timeout(Duration::from_secs(2), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.starts_with("id: "), "{text}");
    assert!(text.contains("event: revocation\n"), "{text}");
    assert!(text.contains(&user.session_id.to_string()), "{text}");
}

on_both_databases!(concurrent_revocations_all_reach_the_feed_in_order);

/// Logouts, a password change and an admin disabling the account, all at once: none fails
/// (no deadlock between them), and every revoked session is in the feed, ids ascending.
async fn concurrent_revocations_all_reach_the_feed_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (id, secret) = server.service_client(&admin, &[]).await;
    let first = server
        .verified_user("many@example.com", "many password 1")
        .await;
    let mut sessions = vec![first.clone()];
    for _ in 0..5 {
        sessions.push(server.log_in("many@example.com", "many password 1").await);
    }
    let me: Value = server
        .get_as(&first.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    let user_path = format!("/api/v1/admin/users/{}", me["id"].as_str().unwrap());

    let change = server.post_as(
        &first.access,
        "/api/v1/password/change",
        json!({ "current_password": "many password 1", "new_password": "many password 2" }),
    );
    let disable = server.patch_as(&admin.access, &user_path, json!({ "disabled": true }));
    let logouts = futures_util::future::join_all(
        sessions[3..]
            .iter()
            .map(|s| server.post_as(&s.access, "/api/v1/logout", json!({}))),
    );
    let (change, disable, logouts) = tokio::join!(change, disable, logouts);
    for response in [&change, &disable].into_iter().chain(logouts.iter()) {
        assert!(
            !response.status().is_server_error(),
            "{} {:?}",
            response.status(),
            response.url()
        );
    }

    let feed: Value = server
        .http
        .get(server.url("/api/v1/revocations"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = feed["revocations"].as_array().unwrap();
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for session in &sessions {
        assert!(
            entries
                .iter()
                .any(|e| e["session_id"] == session.session_id.to_string()),
            "session {} is in the feed",
            session.session_id
        );
    }
}
