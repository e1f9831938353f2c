//! Access and refresh tokens: claims, expiry, tampering, rotation and reuse detection.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::{Backend, FAST_HASHING, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};

on_both_databases!(
    access_token_carries_the_documented_claims,
    access_token_expires_and_tampering_is_refused,
    refresh_rotates_and_old_token_works_only_within_grace,
    concurrent_refreshes_of_one_token_all_succeed_within_grace,
    concurrent_refreshes_of_many_sessions_each_rotate_their_own,
    without_a_grace_a_token_presented_twice_at_once_ends_the_session,
    idle_and_absolute_session_limits_end_refresh,
);

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn access_token_carries_the_documented_claims(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tokens = server
        .verified_user("ka@example.com", "ka password 1")
        .await;
    let header = decode_part(&tokens.access, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256", "the default signing algorithm");
    assert!(header["kid"].as_str().is_some());
    let claims = decode_part(&tokens.access, 1);
    assert_eq!(claims["iss"], server.base_url.as_str());
    assert_eq!(claims["aud"], "gatehouse");
    assert_eq!(claims["sid"], tokens.session_id.to_string());
    assert_eq!(claims["role"], "user");
    assert_eq!(claims["client_id"], "gatehouse-api");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    for claim in ["sub", "jti", "nbf"] {
        assert!(!claims[claim].is_null(), "{claim} missing");
    }
    let me: Value = server
        .get_as(&tokens.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims["sub"], me["id"]);
}

async fn access_token_expires_and_tampering_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tokens = server
        .verified_user("la@example.com", "la password 1")
        .await;

    let mut parts: Vec<String> = tokens.access.split('.').map(str::to_owned).collect();
    let mut claims = decode_part(&tokens.access, 1);
    claims["role"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");
    let header_none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let unsigned = format!("{header_none}.{}.", parts[1]);
    for bad in [tampered.as_str(), unsigned.as_str(), "not.a.token", ""] {
        let response = server.get_as(bad, "/api/v1/me").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(error_code(response).await, "unauthenticated");
    }
    let missing = server
        .http
        .get(server.url("/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);

    // A token from another Gatehouse (another signing key) is refused.
    let other = TestServer::start(Backend::Sqlite).await;
    let foreign = other.verified_user("la@example.com", "la password 1").await;
    assert_eq!(
        server.get_as(&foreign.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        server.get_as(&tokens.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    server.advance(Duration::from_secs(601));
    let expired = server.get_as(&tokens.access, "/api/v1/me").await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
}

async fn refresh_rotates_and_old_token_works_only_within_grace(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server
        .verified_user("ma@example.com", "ma password 1")
        .await;

    let response = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": first.refresh }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = gatehouse_tests::Tokens::from(response.json::<Value>().await.unwrap());
    assert_ne!(second.refresh, first.refresh, "rotated");
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(
        server.get_as(&second.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    // A retry within the grace window still works.
    server.advance(Duration::from_secs(5));
    let retry = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": first.refresh }),
        )
        .await;
    assert_eq!(retry.status(), StatusCode::OK);

    // Later, the old token is taken as stolen: the whole session ends.
    server.advance(Duration::from_secs(6));
    let reuse = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": first.refresh }),
        )
        .await;
    assert_eq!(reuse.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(reuse).await, "invalid_refresh_token");
    let newest = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": second.refresh }),
        )
        .await;
    assert_eq!(
        newest.status(),
        StatusCode::UNAUTHORIZED,
        "the session's other refresh tokens die too"
    );
    assert_eq!(
        server.get_as(&second.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let garbage = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": "garbage" }),
        )
        .await;
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
}

async fn concurrent_refreshes_of_one_token_all_succeed_within_grace(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tokens = server
        .verified_user("na@example.com", "na password 1")
        .await;
    let responses = server.refresh_at_once([tokens.refresh.as_str(); 5]).await;
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        server.get_as(&tokens.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}

/// Refreshes queued at the same moment are written together (one transaction): each
/// still rotates its own session's token, and reuse detection ends only the session whose
/// old token comes back.
async fn concurrent_refreshes_of_many_sessions_each_rotate_their_own(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut sessions = vec![
        server
            .verified_user("pa@example.com", "pa password 1")
            .await,
    ];
    for _ in 1..8 {
        sessions.push(server.log_in("pa@example.com", "pa password 1").await);
    }
    // Every session's token twice at once (a retry, a second tab): 16 rotations at once.
    let attempts = sessions
        .iter()
        .flat_map(|tokens| [tokens.refresh.as_str(); 2]);
    let mut rotated = Vec::new();
    for (i, response) in server
        .refresh_at_once(attempts)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(response.status(), StatusCode::OK);
        let tokens = gatehouse_tests::Tokens::from(response.json::<Value>().await.unwrap());
        assert_eq!(
            tokens.session_id,
            sessions[i / 2].session_id,
            "an answer is for the session whose token was presented"
        );
        rotated.push(tokens);
    }
    let distinct: std::collections::HashSet<_> = rotated.iter().map(|t| &t.refresh).collect();
    assert_eq!(
        distinct.len(),
        16,
        "every answer has a refresh token of its own"
    );

    // After the grace, the first session's old token comes back: that session ends, and
    // only that one.
    server.advance(Duration::from_secs(11));
    let reuse = server.refresh(&sessions[0].refresh).await;
    assert_eq!(reuse.status(), StatusCode::UNAUTHORIZED);
    for tokens in &rotated[..2] {
        let ended = server.refresh(&tokens.refresh).await;
        assert_eq!(
            ended.status(),
            StatusCode::UNAUTHORIZED,
            "the session ended"
        );
    }
    for tokens in rotated[2..].iter().step_by(2) {
        let next = server.refresh(&tokens.refresh).await;
        assert_eq!(next.status(), StatusCode::OK, "other sessions stand");
    }
}

/// With `tokens.refresh_reuse_grace = "0s"` there is no second chance: of two refreshes of
/// one token at once (written in one group, which gives both one claim time), one rotates
/// it and the other is reuse, which ends the session.
async fn without_a_grace_a_token_presented_twice_at_once_ends_the_session(backend: Backend) {
    let no_grace = "[tokens]\nrefresh_reuse_grace = \"0s\"\n";
    let server = TestServer::start_with(backend, &[FAST_HASHING, no_grace]).await;
    let tokens = server
        .verified_user("qa@example.com", "qa password 1")
        .await;
    let mut rotated = Vec::new();
    let mut refused = 0;
    for response in server.refresh_at_once([tokens.refresh.as_str(); 2]).await {
        match response.status() {
            StatusCode::OK => rotated.push(gatehouse_tests::Tokens::from(
                response.json::<Value>().await.unwrap(),
            )),
            StatusCode::UNAUTHORIZED => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((rotated.len(), refused), (1, 1), "one rotation, one reuse");
    let next = server.refresh(&rotated[0].refresh).await;
    assert_eq!(next.status(), StatusCode::UNAUTHORIZED, "the session ended");
    assert_eq!(
        server
            .get_as(&rotated[0].access, "/api/v1/me")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// On PostgreSQL a group of rotations takes the revocation feed's lock, shared, before
/// any row lock: while a revocation holds it (exclusively, from its first statement) the
/// refresh waits for it, before touching the rows the revocation holds, instead of locking sessions the revocation is about to lock one by one,
/// which could deadlock the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_waits_for_a_revocation_in_progress_on_postgres() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let server = TestServer::start(backend).await;
    let tokens = server
        .verified_user("ra@example.com", "ra password 1")
        .await;
    let db = server.gatehouse.db_writer();
    // A revocation in progress: the feed's advisory lock (key "gatehous"), then the row of
    // the session it ends.
    let revocation = db.begin().await.unwrap();
    revocation
        .execute_unprepared("SELECT pg_advisory_xact_lock(7449363237540164979)")
        .await
        .unwrap();
    revocation
        .execute_unprepared(&format!(
            "SELECT id FROM sessions WHERE id = '{}' FOR UPDATE",
            tokens.session_id
        ))
        .await
        .unwrap();
    let refresh = server.refresh(&tokens.refresh);
    tokio::pin!(refresh);
    // The refresh waits for the feed's lock, shared (the key's two halves), not for the
    // session's row: had it locked the row first, it would wait there instead.
    let waiting_for_the_feed = || async {
        db.query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 AS waiting FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'advisory' \
             AND l.classid = 1734440037 AND l.objid = 1752135027 \
             AND l.mode = 'ShareLock' AND NOT l.granted",
        ))
        .await
        .unwrap()
        .is_some()
    };
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                biased;
                response = &mut refresh => {
                    panic!("the refresh went past a revocation in progress: {}", response.status())
                }
                waiting = waiting_for_the_feed() => if waiting { break },
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the refresh never waited for the feed's lock"
    );
    revocation.commit().await.unwrap();
    assert_eq!(refresh.await.status(), StatusCode::OK);
}

async fn idle_and_absolute_session_limits_end_refresh(backend: Backend) {
    let server = TestServer::start(backend).await;
    let busy = server
        .verified_user("oa@example.com", "oa password 1")
        .await;
    let forgotten = server.log_in("oa@example.com", "oa password 1").await;

    // Day 6: both sessions are within the 7-day idle timeout; only `busy` is used.
    server.advance(Duration::from_secs(6 * 24 * 3600));
    let response = server.refresh(&busy.refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut busy_refresh =
        gatehouse_tests::Tokens::from(response.json::<Value>().await.unwrap()).refresh;

    // Day 12: `forgotten` was idle for 12 days.
    server.advance(Duration::from_secs(6 * 24 * 3600));
    assert_eq!(
        server.refresh(&forgotten.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // `busy` lives on through days 12, 18 and 24, and ends at day 30 (absolute lifetime).
    for day in [12, 18, 24] {
        if day != 12 {
            server.advance(Duration::from_secs(6 * 24 * 3600));
        }
        let response = server.refresh(&busy_refresh).await;
        assert_eq!(response.status(), StatusCode::OK, "day {day}");
        busy_refresh =
            gatehouse_tests::Tokens::from(response.json::<Value>().await.unwrap()).refresh;
    }
    server.advance(Duration::from_secs(6 * 24 * 3600));
    assert_eq!(
        server.refresh(&busy_refresh).await.status(),
        StatusCode::UNAUTHORIZED,
        "day 30"
    );
}

on_both_databases!(only_hashes_of_tokens_and_secrets_are_stored);

/// The database holds SHA-256 hashes of refresh tokens, one-time tokens and client
/// secrets, never the values themselves.
async fn only_hashes_of_tokens_and_secrets_are_stored(backend: Backend) {
    use gatehouse_core::platform::secrets::token_hash;
    use gatehouse_entity::{clients, one_time_tokens, refresh_tokens};
    use sea_orm::EntityTrait;

    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (client_id, secret) = server.service_client(&admin, &[]).await;
    let verify =
        gatehouse_tests::token_of(&server.sign_up("hs@example.com", "hs password 1").await);
    server
        .post("/api/v1/email/verify", json!({ "token": verify }))
        .await;
    let tokens = server.log_in("hs@example.com", "hs password 1").await;
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "hs@example.com" }),
        )
        .await;
    let reset = gatehouse_tests::token_of(
        &server
            .mail
            .wait_for("hs@example.com", "Reset your")
            .await
            .link(),
    );

    let db = server.gatehouse.db();
    let refresh_rows: Vec<String> = refresh_tokens::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.token_hash)
        .collect();
    assert!(refresh_rows.contains(&token_hash(&tokens.refresh)));
    assert!(!refresh_rows.contains(&tokens.refresh));
    let one_time: Vec<String> = one_time_tokens::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.token_hash)
        .collect();
    for token in [&verify, &reset] {
        assert!(one_time.contains(&token_hash(token)));
        assert!(
            !one_time
                .iter()
                .any(|stored| stored.contains(token.as_str()))
        );
    }
    let client = clients::Entity::find_by_id(client_id.as_str())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        client.secret_hash.as_deref(),
        Some(token_hash(&secret).as_str())
    );
}
