//! The periodic purge removes what nobody can use any more, and only that.

use std::time::Duration;

use gatehouse_entity::{audit_events, one_time_tokens, refresh_tokens, sessions};
use gatehouse_tests::{Backend, TestServer, on_both_databases};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

on_both_databases!(
    purge_removes_expired_tokens_and_sessions,
    the_purge_keeps_the_audit_log_for_its_retention,
);

async fn purge_removes_expired_tokens_and_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let db = server.gatehouse.db();
    let kept = server
        .verified_user("ma@example.com", "ma password 1")
        .await;
    let ended = server.log_in("ma@example.com", "ma password 1").await;
    server
        .post_as(&ended.access, "/api/v1/logout", json!({}))
        .await;
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "ma@example.com" }),
        )
        .await;
    server.mail.wait_for("ma@example.com", "Reset your").await;

    let nothing_yet = server.gatehouse.purge_expired().await.unwrap();
    assert_eq!(
        nothing_yet.sessions, 0,
        "a revoked session stays while its access tokens live"
    );
    assert_eq!(nothing_yet.one_time_tokens, 0);

    // Past the reset link's hour and the access token's ten minutes.
    server.advance(Duration::from_secs(3601));
    let report = server.gatehouse.purge_expired().await.unwrap();
    assert_eq!(report.sessions, 1);
    assert_eq!(
        report.one_time_tokens, 1,
        "the reset token; the used verification token lives 24 h"
    );
    assert_eq!(sessions::Entity::find().count(db).await.unwrap(), 1);
    assert_eq!(one_time_tokens::Entity::find().count(db).await.unwrap(), 1);
    let kept_refresh = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": kept.refresh }),
        )
        .await;
    assert_eq!(
        kept_refresh.status(),
        reqwest::StatusCode::OK,
        "live sessions are untouched"
    );
    assert_eq!(
        refresh_tokens::Entity::find().count(db).await.unwrap(),
        2,
        "rotated and current of the live session"
    );

    // Twice in a row (as several instances would) is harmless.
    assert_eq!(server.gatehouse.purge_expired().await.unwrap().sessions, 0);
}

#[tokio::test]
async fn the_purge_removes_idle_browser_sessions_and_old_authorization_codes() {
    use gatehouse_tests::pages::PageWalker;
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin("root@example.com").await;
    let redirect = "http://127.0.0.1:9/cb";
    let (client_id, secret) = server
        .register_client(
            &admin,
            json!({ "name": "App", "type": "confidential", "first_party": true,
                    "grant_types": ["authorization_code"], "redirect_uris": [redirect] }),
        )
        .await;
    server
        .verified_user("pu@example.com", "purge me please")
        .await;
    let walker = PageWalker::new();
    let mut url = reqwest::Url::parse(&server.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("state", "s"),
    ]);
    let callback = walker
        .authorize(url.as_str(), redirect, "pu@example.com", "purge me please")
        .await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let exchanged = server
        .post_form(
            "/oauth2/token",
            (&client_id, secret.as_deref().unwrap()),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
            ],
        )
        .await;
    assert_eq!(exchanged.status(), reqwest::StatusCode::OK);
    let fresh = server.gatehouse.purge_expired().await.unwrap();
    assert_eq!((fresh.authorization_codes, fresh.browser_sessions), (0, 0));

    // Past the browser session's 12 idle hours (and the code's minute plus the tokens').
    server.advance(Duration::from_secs(12 * 3600 + 1));
    let report = server.gatehouse.purge_expired().await.unwrap();
    assert_eq!(report.authorization_codes, 1);
    assert_eq!(report.browser_sessions, 1);
    let page = walker.get(&server.url("/account/sessions")).await;
    assert_eq!(gatehouse_tests::pages::location(&page).path(), "/login");
}

/// Audit entries older than `audit.retention` (400 days by default) are deleted by the
/// purge, however many there are (several statements of a batch each); newer ones stay.
async fn the_purge_keeps_the_audit_log_for_its_retention(backend: Backend) {
    use gatehouse_core::platform::clock::Clock;
    use sea_orm::{ActiveValue::Set, ColumnTrait, QueryFilter};

    const DAY: Duration = Duration::from_secs(24 * 3600);
    let server = TestServer::start(backend).await;
    let db = server.gatehouse.db_writer();
    let start = server.clock.now();
    server.sign_up("old@example.com", "au password 1").await;
    // Old history written straight into the table, more than one purge statement takes.
    let filler: u64 = 12_345;
    for chunk in 0..filler.div_ceil(1000) {
        let rows =
            (chunk * 1000..filler.min((chunk + 1) * 1000)).map(|n| audit_events::ActiveModel {
                occurred_at: Set(start - Duration::from_secs(n)),
                event: Set("login_failed".to_owned()),
                details: Set(Some("{}".to_owned())),
                ..Default::default()
            });
        audit_events::Entity::insert_many(rows)
            .exec(db)
            .await
            .unwrap();
    }

    server.advance(DAY * 200);
    let middle = server.clock.now();
    server.sign_up("new@example.com", "au password 1").await;
    assert_eq!(
        server.gatehouse.purge_expired().await.unwrap().audit_events,
        0,
        "nothing is 400 days old yet"
    );

    // 400 days and a second after the start: the start's entries are past the retention.
    server.advance(DAY * 200 + Duration::from_secs(1));
    let cutoff = server.clock.now() - DAY * 400;
    assert!(start < cutoff && cutoff < middle);
    let old = audit_events::Entity::find()
        .filter(audit_events::Column::OccurredAt.lte(cutoff))
        .count(db)
        .await
        .unwrap();
    assert!(old > filler, "the filler and the first sign-up: {old}");
    let newer = audit_events::Entity::find()
        .filter(audit_events::Column::OccurredAt.gt(cutoff))
        .all(db)
        .await
        .unwrap();
    assert!(
        newer.iter().any(|e| e.event == "signup"),
        "the second sign-up: {newer:?}"
    );

    let report = server.gatehouse.purge_expired().await.unwrap();
    assert_eq!(report.audit_events, old);
    let left = audit_events::Entity::find().all(db).await.unwrap();
    assert!(left.iter().all(|e| e.occurred_at > cutoff), "{left:?}");
    for kept in &newer {
        assert!(left.contains(kept), "{kept:?} stays");
    }
    assert_eq!(
        server.gatehouse.purge_expired().await.unwrap().audit_events,
        0
    );
}
