//! The admin API: find and change accounts, end sessions, read the audit log.

use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    only_admins_reach_the_admin_api,
    admins_find_users_by_page_and_email,
    the_email_filter_is_a_prefix_of_the_address,
    the_email_search_reads_the_index,
    admins_change_roles_and_disable_accounts,
    admins_end_sessions,
    audit_log_records_who_did_what,
);

async fn user_id(server: &TestServer, access: &str) -> String {
    let me: Value = server
        .get_as(access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn only_admins_reach_the_admin_api(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server
        .verified_user("xa@example.com", "xa password 1")
        .await;
    let id = user_id(&server, &user.access).await;
    let paths = [
        "/api/v1/admin/users".to_owned(),
        format!("/api/v1/admin/users/{id}"),
        format!("/api/v1/admin/users/{id}/sessions"),
        "/api/v1/admin/audit".to_owned(),
    ];
    for path in &paths {
        let anonymous = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        let forbidden = server.get_as(&user.access, path).await;
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(error_code(forbidden).await, "forbidden");
    }
    let patch = server
        .patch_as(
            &user.access,
            &format!("/api/v1/admin/users/{id}"),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(patch.status(), StatusCode::FORBIDDEN);
    let revoke = server
        .post_as(
            &user.access,
            &format!("/api/v1/admin/users/{id}/sessions/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(revoke.status(), StatusCode::FORBIDDEN);
    let delete = server
        .delete_as(
            &user.access,
            &format!("/api/v1/admin/sessions/{}", user.session_id),
        )
        .await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}

async fn admins_find_users_by_page_and_email(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    for name in ["ya", "yb", "yc", "yd"] {
        server
            .sign_up(&format!("{name}@example.com"), "y password 1")
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/admin/users?limit=2".to_owned();
    loop {
        let page: Value = server
            .get_as(&admin.access, &path)
            .await
            .json()
            .await
            .unwrap();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/admin/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "root@example.com",
            "ya@example.com",
            "yb@example.com",
            "yc@example.com",
            "yd@example.com"
        ]
    );

    let found: Value = server
        .get_as(&admin.access, "/api/v1/admin/users?email=YC@")
        .await
        .json()
        .await
        .unwrap();
    let users = found["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["email"], "yc@example.com");
    assert_eq!(users[0]["email_verified"], false);
    assert_eq!(users[0]["disabled"], false);

    let id = users[0]["id"].as_str().unwrap();
    let one: Value = server
        .get_as(&admin.access, &format!("/api/v1/admin/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["email"], "yc@example.com");

    let missing = server
        .get_as(
            &admin.access,
            &format!("/api/v1/admin/users/{}", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        server
            .get_as(&admin.access, "/api/v1/admin/users/not-a-uuid")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let bad_limit = server
        .get_as(&admin.access, "/api/v1/admin/users?limit=100000")
        .await;
    assert_eq!(bad_limit.status(), StatusCode::BAD_REQUEST);
    let bad_cursor = server
        .get_as(&admin.access, "/api/v1/admin/users?cursor=zzz")
        .await;
    assert_eq!(error_code(bad_cursor).await, "invalid_request");
}

async fn emails_found(server: &TestServer, admin: &str, filter: &str) -> Vec<String> {
    let found = server
        .get_as(admin, &format!("/api/v1/admin/users?email={filter}"))
        .await;
    assert_eq!(found.status(), StatusCode::OK, "email={filter}");
    let found: Value = found.json().await.unwrap();
    found["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

/// `email=` finds the addresses that start with it (normalised like an address), never
/// those that merely contain it; `%` and `_` are the characters themselves.
async fn the_email_filter_is_a_prefix_of_the_address(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    for email in [
        "ann@example.com",
        "anna@example.org",
        "joann@example.com",
        "a_b@example.com",
        "axb@example.com",
        "c%d@example.com",
        "ann@xn--bcher-kva.example",
    ] {
        server.sign_up(email, "z password 1").await;
    }
    let cases: [(&str, &[&str]); 16] = [
        (
            "ann",
            &[
                "ann@example.com",
                "anna@example.org",
                "ann@xn--bcher-kva.example",
            ],
        ),
        (
            "ANN",
            &[
                "ann@example.com",
                "anna@example.org",
                "ann@xn--bcher-kva.example",
            ],
        ),
        (
            "%20Ann%20",
            &[
                "ann@example.com",
                "anna@example.org",
                "ann@xn--bcher-kva.example",
            ],
        ),
        ("ann@", &["ann@example.com", "ann@xn--bcher-kva.example"]),
        ("Ann@Example.COM", &["ann@example.com"]),
        ("ann@example.co", &["ann@example.com"]),
        ("ann@b%C3%BCcher.example", &["ann@xn--bcher-kva.example"]),
        // Inside the address, not at its start: no match.
        ("oann", &[]),
        ("%40example.com", &[]),
        ("example", &[]),
        // No wildcards.
        ("a_b", &["a_b@example.com"]),
        ("_", &[]),
        ("a%25", &[]),
        ("c%25d", &["c%d@example.com"]),
        ("%25", &[]),
        ("b%C3%BC", &[]),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            emails_found(&server, &admin.access, filter).await,
            expected,
            "email={filter}"
        );
    }
    // Pages of a search: the cursor keeps the prefix.
    let first: Value = server
        .get_as(&admin.access, "/api/v1/admin/users?email=a&limit=2")
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = server
        .get_as(
            &admin.access,
            &format!("/api/v1/admin/users?email=a&limit=10&cursor={cursor}"),
        )
        .await
        .json()
        .await
        .unwrap();
    let all: Vec<&str> = first["users"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["users"].as_array().unwrap())
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        all,
        [
            "ann@example.com",
            "anna@example.org",
            "a_b@example.com",
            "axb@example.com",
            "ann@xn--bcher-kva.example"
        ]
    );
    assert!(second["next_cursor"].is_null());
}

/// The statement the user search runs is answered from the index of `users.email`, on
/// both databases: asked for its plan, the database names that index and scans no table.
async fn the_email_search_reads_the_index(backend: Backend) {
    use gatehouse_core::UserQuery;
    use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement, TransactionTrait};

    let server = TestServer::start(backend).await;
    for n in 0..20 {
        server
            .sign_up(&format!("user{n}@example.com"), "i password 1")
            .await;
    }
    let db = server.gatehouse.db();
    let engine = db.get_database_backend();
    let query = UserQuery {
        email: Some("User1".to_owned()),
        cursor: Some(uuid::Uuid::nil()),
        ..Default::default()
    };
    let sql = query.select().unwrap().build(engine).to_string();
    assert!(!sql.contains("LIKE"), "{sql}");
    let plan: Vec<String> = match engine {
        DbBackend::Sqlite => db
            .query_all_raw(Statement::from_string(
                engine,
                format!("EXPLAIN QUERY PLAN {sql}"),
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect(),
        _ => {
            // On a table this small PostgreSQL reads every row whatever the indexes;
            // without sequential scans it shows whether the index can answer the range.
            let txn = db.begin().await.unwrap();
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .unwrap();
            let plan = txn
                .query_all_raw(Statement::from_string(engine, format!("EXPLAIN {sql}")))
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String>("", "QUERY PLAN").unwrap())
                .collect();
            txn.rollback().await.unwrap();
            // The column compares byte by byte, so that the range is the prefix.
            let collation = db
                .query_one_raw(Statement::from_string(
                    engine,
                    "SELECT collation_name FROM information_schema.columns \
                     WHERE table_name = 'users' AND column_name = 'email'",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get::<Option<String>>("", "collation_name")
                .unwrap();
            assert_eq!(collation.as_deref(), Some("C"));
            plan
        }
    };
    let text = plan.join("\n");
    eprintln!("plan of {sql}:\n{text}");
    match engine {
        DbBackend::Sqlite => {
            assert!(
                plan.iter()
                    .any(|line| line.starts_with("SEARCH users USING")
                        && line.contains("INDEX")
                        && line.contains("email>? AND email<?")),
                "{text}"
            );
            assert!(!plan.iter().any(|l| l.starts_with("SCAN users")), "{text}");
        }
        _ => {
            assert!(!text.contains("Seq Scan"), "{text}");
            assert!(
                plan.iter().any(|line| line.contains("Index Cond")
                    && line.contains("email")
                    && line.contains(">=")
                    && line.contains('<')),
                "{text}"
            );
        }
    }
}

async fn admins_change_roles_and_disable_accounts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let user = server
        .verified_user("za@example.com", "za password 1")
        .await;
    let id = user_id(&server, &user.access).await;
    let path = format!("/api/v1/admin/users/{id}");

    let promoted: Value = server
        .patch_as(&admin.access, &path, json!({ "role": "admin" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(promoted["role"], "admin");
    assert_eq!(
        server
            .get_as(&user.access, "/api/v1/admin/users")
            .await
            .status(),
        StatusCode::OK,
        "the new role applies to existing tokens at once"
    );
    server
        .patch_as(&admin.access, &path, json!({ "role": "user" }))
        .await;
    assert_eq!(
        server
            .get_as(&user.access, "/api/v1/admin/users")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    let bad_role = server
        .patch_as(&admin.access, &path, json!({ "role": "owner" }))
        .await;
    assert_eq!(bad_role.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(bad_role).await, "invalid_request");

    let disabled = server
        .patch_as(&admin.access, &path, json!({ "disabled": true }))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(disabled.json::<Value>().await.unwrap()["disabled"], true);
    assert_eq!(
        server.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": user.refresh }),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);

    server
        .patch_as(&admin.access, &path, json!({ "disabled": false }))
        .await;
    server.log_in("za@example.com", "za password 1").await;

    let admin_id = user_id(&server, &admin.access).await;
    let own = format!("/api/v1/admin/users/{admin_id}");
    for change in [json!({ "disabled": true }), json!({ "role": "user" })] {
        let refused = server.patch_as(&admin.access, &own, change).await;
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        assert_eq!(error_code(refused).await, "cannot_modify_self");
    }
}

async fn admins_end_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let first = server
        .verified_user("ab@example.com", "ab password 1")
        .await;
    let second = server.log_in("ab@example.com", "ab password 1").await;
    let third = server.log_in("ab@example.com", "ab password 1").await;
    let id = user_id(&server, &first.access).await;

    let sessions: Vec<Value> = server
        .get_as(&admin.access, &format!("/api/v1/admin/users/{id}/sessions"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 3);

    let one = server
        .delete_as(
            &admin.access,
            &format!("/api/v1/admin/sessions/{}", first.session_id),
        )
        .await;
    assert_eq!(one.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        server.get_as(&first.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get_as(&second.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    let missing = server
        .delete_as(
            &admin.access,
            &format!("/api/v1/admin/sessions/{}", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let all: Value = server
        .post_as(
            &admin.access,
            &format!("/api/v1/admin/users/{id}/sessions/revoke"),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["revoked"], 2);
    for tokens in [&second, &third] {
        assert_eq!(
            server.get_as(&tokens.access, "/api/v1/me").await.status(),
            StatusCode::UNAUTHORIZED
        );
        let refresh = server
            .post(
                "/api/v1/token/refresh",
                json!({ "refresh_token": tokens.refresh }),
            )
            .await;
        assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        server.get_as(&admin.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}

async fn audit_log_records_who_did_what(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = user_id(&server, &admin.access).await;
    let user = server
        .verified_user("ac@example.com", "ac password 1")
        .await;
    let id = user_id(&server, &user.access).await;
    server
        .post(
            "/api/v1/login",
            json!({ "email": "ac@example.com", "password": "wrong password" }),
        )
        .await;
    server
        .http
        .delete(server.url(&format!("/api/v1/admin/sessions/{}", user.session_id)))
        .bearer_auth(&admin.access)
        .header("user-agent", "AdminConsole/2")
        .send()
        .await
        .unwrap();
    server
        .patch_as(
            &admin.access,
            &format!("/api/v1/admin/users/{id}"),
            json!({ "role": "admin" }),
        )
        .await;
    server
        .patch_as(
            &admin.access,
            &format!("/api/v1/admin/users/{id}"),
            json!({ "disabled": true }),
        )
        .await;
    server
        .patch_as(
            &admin.access,
            &format!("/api/v1/admin/users/{id}"),
            json!({ "disabled": false }),
        )
        .await;

    let page: Value = server
        .get_as(
            &admin.access,
            &format!("/api/v1/admin/audit?user_id={id}&limit=200"),
        )
        .await
        .json()
        .await
        .unwrap();
    let events: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "user_enabled",
            "user_disabled",
            "role_changed",
            "session_revoked",
            "login_failed",
            "login_succeeded",
            "email_verified",
            "signup"
        ],
        "newest first"
    );
    let revoked = &page["events"][3];
    assert_eq!(revoked["actor_user_id"], admin_id.as_str());
    assert_eq!(revoked["subject_user_id"], id.as_str());
    assert_eq!(revoked["session_id"], user.session_id.to_string());
    assert_eq!(revoked["ip"], "127.0.0.1");
    assert_eq!(revoked["user_agent"], "AdminConsole/2");
    assert!(revoked["occurred_at"].as_str().is_some());
    assert_eq!(page["events"][2]["details"]["to"], "admin");

    let failures: Value = server
        .get_as(&admin.access, "/api/v1/admin/audit?event=login_failed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failures["events"].as_array().unwrap().len(), 1);

    let first: Value = server
        .get_as(&admin.access, "/api/v1/admin/audit?limit=3")
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"].as_i64().unwrap();
    let next: Value = server
        .get_as(
            &admin.access,
            &format!("/api/v1/admin/audit?limit=3&cursor={cursor}"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(next["events"][0]["id"].as_i64().unwrap() < cursor);
}
