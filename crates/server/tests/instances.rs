//! Several instances acting as one: two real `gatehouse serve` processes on different
//! ports and one PostgreSQL database. A session revoked through one is refused by the
//! other, and reaches the other's revocation stream, within a second (LISTEN/NOTIFY: the
//! poll is set to an hour here, so only the notice can carry it); key rotation, the purge
//! and back-channel logout delivery happen once, not once per instance.
//!
//! PostgreSQL only (SQLite serves one instance): each test skips with a message when
//! `GATEHOUSE_TEST_POSTGRES` is unset.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a step that fails must fail the test loudly"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the tests wait for real processes, polling with a deadline"
)]

mod support;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use futures_util::StreamExt;
use gatehouse_tests::pages::PageWalker;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Db, Deployment, FAST, Instance, eventually};

const PASSWORD: &str = "correct horse battery";
const ADMIN_PASSWORD: &str = "admin password 1";

/// The revocation poll is an hour: anything an instance learns within a second came by
/// LISTEN/NOTIFY.
fn no_poll() -> String {
    format!("{FAST}[revocations]\npoll_interval = \"1h\"\n")
}

async fn two_instances(extra: &str) -> Option<(Deployment, Instance, Instance)> {
    let deployment = Deployment::new(Db::Postgres).await?;
    let a = deployment.serve(extra).await;
    let b = deployment.serve(extra).await;
    Some((deployment, a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_through_one_instance_is_refused_by_the_other_within_a_second() {
    let Some((deployment, a, b)) = two_instances(&no_poll()).await else {
        return;
    };
    deployment
        .run(
            &["user", "create", "--email", "ada@example.com", "--verified"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    let (feed_id, feed_secret) = deployment
        .create_client(&["--name", "feed", "--grant", "client_credentials"])
        .await;
    let login = a.log_in("ada@example.com", PASSWORD).await;
    let access = login["access_token"].as_str().unwrap();
    let session_id = login["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        b.get_as(access, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    // The other instance's event stream, subscribed once its headers arrived.
    let stream = b
        .http
        .get(b.url("/api/v1/revocations"))
        .basic_auth(&feed_id, Some(&feed_secret))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut events = stream.bytes_stream();

    let logout = a
        .http
        .post(a.url("/api/v1/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "{}", logout.status());
    let revoked = Instant::now();

    eventually(
        Duration::from_secs(1),
        "the other instance refuses the revoked session",
        || async {
            let status = b.get_as(access, "/api/v1/me").await.status();
            (status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;

    let mut seen = String::new();
    let arrived = tokio::time::timeout_at(
        tokio::time::Instant::from_std(revoked + Duration::from_secs(1)),
        async {
            while let Some(chunk) = events.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
                if seen.contains(&session_id) {
                    return;
                }
            }
            panic!("the stream ended: {seen}");
        },
    )
    .await;
    assert!(
        arrived.is_ok(),
        "the revocation did not reach the other instance's stream within a second (seen: {seen:?})"
    );
    assert!(seen.contains("event: revocation"), "{seen}");
}

/// A role change revokes nothing, so the feed does not carry it: the other instance's
/// in-process view of the session (`sessions.live_cache_ttl`, 1 s) must let it go in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_demoted_through_one_instance_loses_admin_rights_on_the_other_within_a_second() {
    let Some((deployment, a, b)) = two_instances(&no_poll()).await else {
        return;
    };
    deployment
        .create_admin("root@example.com", ADMIN_PASSWORD)
        .await;
    deployment
        .create_admin("eve@example.com", ADMIN_PASSWORD)
        .await;
    let root = a.log_in("root@example.com", ADMIN_PASSWORD).await;
    let root = root["access_token"].as_str().unwrap().to_owned();
    let eve = b.log_in("eve@example.com", ADMIN_PASSWORD).await;
    let eve = eve["access_token"].as_str().unwrap().to_owned();
    // Eve's session is read, and kept, by both instances.
    for instance in [&a, &b, &a, &b] {
        assert_eq!(
            instance.get_as(&eve, "/api/v1/admin/users").await.status(),
            StatusCode::OK
        );
    }
    let eve_id = users_of(&a, &root, "eve@example.com").await;
    let demoted = a
        .http
        .patch(a.url(&format!("/api/v1/admin/users/{eve_id}")))
        .bearer_auth(&root)
        .json(&json!({ "role": "user" }))
        .send()
        .await
        .unwrap();
    assert_eq!(demoted.status(), StatusCode::OK);
    assert_eq!(
        a.get_as(&eve, "/api/v1/admin/users").await.status(),
        StatusCode::FORBIDDEN,
        "the instance that demoted her refuses at once"
    );
    // Within the other instance's TTL her reads may still pass, but no admin write does:
    // she cannot demote the admin who demoted her (or undo her own demotion).
    let root_id = users_of(&a, &root, "root@example.com").await;
    let revenge = b
        .http
        .patch(b.url(&format!("/api/v1/admin/users/{root_id}")))
        .bearer_auth(&eve)
        .json(&json!({ "role": "user" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        revenge.status(),
        StatusCode::FORBIDDEN,
        "an admin write checks the role as stored now"
    );
    let root_still_admin = a.get_as(&root, "/api/v1/admin/users").await.status();
    assert_eq!(root_still_admin, StatusCode::OK);
    eventually(
        Duration::from_secs(1),
        "the other instance refuses the demoted admin",
        || async {
            let status = b.get_as(&eve, "/api/v1/admin/users").await.status();
            (status == StatusCode::FORBIDDEN).then_some(())
        },
    )
    .await;
}

/// The id of the account with this address, through the admin API.
async fn users_of(instance: &Instance, admin: &str, email: &str) -> String {
    let users: Value = instance
        .get_as(admin, &format!("/api/v1/admin/users?email={email}"))
        .await
        .json()
        .await
        .unwrap();
    users["users"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_key_rotation_adds_one_key_not_one_per_instance() {
    // A key is due 2 s after the newest activated (3 s minus 1 s ahead); both instances
    // check every 50 ms.
    let settings = format!(
        "{FAST}[keys]\nrotate_every = \"3s\"\npublish_ahead = \"1s\"\nreload_interval = \"50ms\"\n"
    );
    let Some((deployment, _a, _b)) = two_instances(&settings).await else {
        return;
    };
    let db = deployment.db().await;
    let keys = || async {
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT generation, activates_at FROM signing_keys ORDER BY generation, activates_at",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.try_get::<i64>("", "generation").unwrap(),
                row.try_get::<chrono::DateTime<chrono::Utc>>("", "activates_at")
                    .unwrap(),
            )
        })
        .collect::<Vec<_>>()
    };
    // Two rotations came due while both instances ran.
    let keys = eventually(Duration::from_secs(20), "two rotations", || async {
        let keys = keys().await;
        (keys.iter().any(|(generation, _)| *generation >= 3)).then_some(keys)
    })
    .await;
    let generations: Vec<i64> = keys.iter().map(|(g, _)| *g).collect();
    assert_eq!(
        generations,
        (1..=generations.len() as i64).collect::<Vec<_>>(),
        "one key per generation: {keys:?}"
    );
    for pair in keys.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= chrono::Duration::seconds(3),
            "a key was added before the previous rotation was due: {keys:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_purge_once_per_interval() {
    let settings = format!("{FAST}[maintenance]\npurge_interval = \"500ms\"\n");
    let Some((deployment, _a, _b)) = two_instances(&settings).await else {
        return;
    };
    let db = deployment.db().await;
    let runs = eventually(Duration::from_secs(20), "six purges", || async {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT occurred_at FROM audit_events WHERE event = 'expired_rows_purged' \
                 ORDER BY occurred_at",
            ))
            .await
            .unwrap();
        let runs: Vec<chrono::DateTime<chrono::Utc>> = rows
            .into_iter()
            .map(|row| row.try_get("", "occurred_at").unwrap())
            .collect();
        (runs.len() >= 6).then_some(runs)
    })
    .await;
    // Each instance ticks every 500 ms; run by both, purges would come in pairs.
    for pair in runs.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::milliseconds(450),
            "two purges in one interval: {runs:?}"
        );
    }
}

/// An app's back-channel logout endpoint that records every logout token posted to it.
#[derive(Clone, Default)]
struct LogoutReceiver {
    tokens: Arc<Mutex<Vec<String>>>,
}

impl LogoutReceiver {
    fn start() -> (Self, String) {
        let receiver = LogoutReceiver::default();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/backchannel-logout",
            listener.local_addr().unwrap()
        );
        let state = receiver.clone();
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().route(
                "/backchannel-logout",
                web::post().to(move |form: web::Form<Vec<(String, String)>>| {
                    let state = state.clone();
                    async move {
                        let token = form
                            .iter()
                            .find(|(k, _)| k == "logout_token")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        state.tokens.lock().unwrap().push(token);
                        HttpResponse::Ok().finish()
                    }
                }),
            )
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        (receiver, url)
    }

    fn sids(&self) -> Vec<String> {
        self.tokens
            .lock()
            .unwrap()
            .iter()
            .map(|token| {
                let claims = token.split('.').nth(1).unwrap();
                let claims: Value = serde_json::from_slice(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(claims)
                        .unwrap(),
                )
                .unwrap();
                claims["sid"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

/// Signs in to a first-party app through the hosted pages of `instance`; the app
/// session's id (`sid`).
async fn app_session(instance: &Instance, client: (&str, &str), redirect_uri: &str) -> String {
    let verifier = "a-verifier-that-is-long-enough-to-be-a-valid-pkce-verifier-0123";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let mut url = reqwest::Url::parse(&instance.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("client_id", client.0),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let callback = PageWalker::new()
        .authorize(url.as_str(), redirect_uri, "ada@example.com", PASSWORD)
        .await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: Value = instance
        .http
        .post(instance.url("/oauth2/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_logout_is_posted_to_the_app_once_by_two_instances() {
    const SESSIONS: usize = 5;
    const APP: &str = "http://127.0.0.1:9/callback";
    // Both instances look for due notices every 20 ms.
    let settings = format!("{FAST}[backchannel_logout]\npoll_interval = \"20ms\"\n");
    let Some((deployment, a, b)) = two_instances(&settings).await else {
        return;
    };
    let (receiver, uri) = LogoutReceiver::start();
    deployment
        .create_admin("root@example.com", ADMIN_PASSWORD)
        .await;
    deployment
        .run(
            &["user", "create", "--email", "ada@example.com", "--verified"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    let (client_id, secret) = deployment
        .create_client(&[
            "--name",
            "Shop",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            APP,
            "--first-party",
            "--backchannel-logout-uri",
            &uri,
        ])
        .await;
    let mut sids = HashSet::new();
    for n in 0..SESSIONS {
        let instance = if n % 2 == 0 { &a } else { &b };
        sids.insert(app_session(instance, (&client_id, &secret), APP).await);
    }
    assert_eq!(sids.len(), SESSIONS);

    // The admin ends every session of the user at once: one notice per app session.
    let admin = a.log_in("root@example.com", ADMIN_PASSWORD).await;
    let admin = admin["access_token"].as_str().unwrap();
    let users: Value = a
        .get_as(admin, "/api/v1/admin/users?email=ada@example.com")
        .await
        .json()
        .await
        .unwrap();
    let user_id = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ada@example.com")
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .unwrap();
    let revoked = a
        .http
        .post(a.url(&format!("/api/v1/admin/users/{user_id}/sessions/revoke")))
        .bearer_auth(admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());

    // Every delivery is audited once it is done.
    let db = deployment.db().await;
    eventually(
        Duration::from_secs(20),
        "every notice delivered",
        || async {
            let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM backchannel_deliveries WHERE delivered_at IS NOT NULL",
            ))
            .await
            .unwrap()
            .unwrap();
            (row.try_get::<i64>("", "n").unwrap() as usize >= SESSIONS).then_some(())
        },
    )
    .await;
    let mut received = receiver.sids();
    received.sort();
    let mut expected: Vec<String> = sids.into_iter().collect();
    expected.sort();
    assert_eq!(received, expected, "one logout token per app session");
}
