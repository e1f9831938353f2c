//! Logging in: the same refusal for a wrong email or a wrong password, disabled and
//! unverified accounts, and imported password hashes upgraded on the way.

use gatehouse_core::identity::hashing::PasswordHasher;
use gatehouse_entity::users;
use gatehouse_tests::{Backend, FAST_HASHING, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

on_both_databases!(
    wrong_email_and_wrong_password_are_refused_alike,
    unknown_email_costs_one_hash_like_a_known_one,
    bcrypt_and_outdated_argon2_hashes_are_upgraded_at_login,
    disabled_account_is_refused,
    unverified_login_allowed_when_not_required,
    failed_logins_sent_at_once_cannot_pass_the_limit,
);

/// Thirty wrong passwords for one address sent at once: no more of them reach the
/// password check than the limit allows (the counter is checked and moved before any
/// hashing, under the key's lock), and the right password without a device token is
/// refused after (the owner's devices: see the lockout journeys).
async fn failed_logins_sent_at_once_cannot_pass_the_limit(backend: Backend) {
    let limits = "[lockout]\nmax_failures = 5\nslow_down_after = 1000\nwindow = \"15m\"\n";
    let server = TestServer::start_with(backend, &[FAST_HASHING, limits]).await;
    server
        .verified_user("burst@example.com", "burst password 1")
        .await;
    let hashes = server.gatehouse.hasher().completed_operations();
    let attempts = (0..30).map(|_| {
        server.post(
            "/api/v1/login",
            json!({ "email": "burst@example.com", "password": "wrong password" }),
        )
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(checked, 5, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(
        server.gatehouse.hasher().completed_operations() - hashes,
        5,
        "only the attempts within the limit were hashed"
    );
    let owner = server
        .post(
            "/api/v1/login",
            json!({ "email": "burst@example.com", "password": "burst password 1" }),
        )
        .await;
    assert_eq!(owner.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn wrong_email_and_wrong_password_are_refused_alike(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .verified_user("gu@example.com", "gu password 1")
        .await;
    let wrong_password = server
        .post(
            "/api/v1/login",
            json!({ "email": "gu@example.com", "password": "not the password" }),
        )
        .await;
    let wrong_email = server
        .post(
            "/api/v1/login",
            json!({ "email": "nobody@example.com", "password": "gu password 1" }),
        )
        .await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_email.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong_password.text().await.unwrap(),
        wrong_email.text().await.unwrap()
    );
}

async fn unknown_email_costs_one_hash_like_a_known_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .verified_user("ha@example.com", "ha password 1")
        .await;
    let hashes = || server.gatehouse.hasher().completed_operations();

    let before = hashes();
    server
        .post(
            "/api/v1/login",
            json!({ "email": "ha@example.com", "password": "wrong password" }),
        )
        .await;
    let known = hashes() - before;

    let before = hashes();
    server
        .post(
            "/api/v1/login",
            json!({ "email": "nobody@example.com", "password": "wrong password" }),
        )
        .await;
    let unknown = hashes() - before;
    assert_eq!(known, 1);
    assert_eq!(
        unknown, known,
        "an unknown account is checked against a dummy hash"
    );
}

async fn bcrypt_and_outdated_argon2_hashes_are_upgraded_at_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let stored_hash = |email: &'static str| {
        let db = server.gatehouse.db().clone();
        async move {
            users::Entity::find()
                .filter(users::Column::Email.eq(email))
                .one(&db)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let import = |email: &'static str, hash: String| {
        let db = server.gatehouse.db_writer().clone();
        let gatehouse = server.gatehouse.clone();
        async move {
            gatehouse
                .create_user(
                    email,
                    "placeholder pw".to_owned().into(),
                    gatehouse_core::Role::User,
                    true,
                )
                .await
                .unwrap();
            let user = users::Entity::find()
                .filter(users::Column::Email.eq(email))
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            users::ActiveModel {
                id: Set(user.id),
                password_hash: Set(hash),
                ..Default::default()
            }
            .update(&db)
            .await
            .unwrap();
        }
    };

    for prefix in ["$2b$", "$2a$", "$2y$"] {
        let email: &'static str =
            Box::leak(format!("legacy{}@example.com", &prefix[2..3]).into_boxed_str());
        let hash = bcrypt::hash("imported password", 4)
            .unwrap()
            .replacen("$2b$", prefix, 1);
        import(email, hash).await;
        let wrong = server
            .post(
                "/api/v1/login",
                json!({ "email": email, "password": "wrong password" }),
            )
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(
            stored_hash(email).await.password_hash.starts_with(prefix),
            "no upgrade on failure"
        );
        server.log_in(email, "imported password").await;
        let upgraded = stored_hash(email).await.password_hash;
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
            "{upgraded}"
        );
        server.log_in(email, "imported password").await;
    }

    let old_params = FAST_HASHING.replace("argon2_memory_kib = 256", "argon2_memory_kib = 128");
    let old_settings = gatehouse_server::config::Config::load_with(None, &[&old_params])
        .unwrap()
        .password;
    let old_hasher = PasswordHasher::new(&old_settings).unwrap();
    let password =
        gatehouse_core::Password::presented("older password".to_owned().into(), &old_settings, "p")
            .unwrap();
    import(
        "argon@example.com",
        old_hasher.hash(&password).await.unwrap(),
    )
    .await;
    server.log_in("argon@example.com", "older password").await;
    let upgraded = stored_hash("argon@example.com").await.password_hash;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
        "{upgraded}"
    );
}

async fn disabled_account_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let user = server
        .verified_user("ia@example.com", "ia password 1")
        .await;
    let me: serde_json::Value = server
        .get_as(&user.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    let id = me["id"].as_str().unwrap();
    let patched = server
        .patch_as(
            &admin.access,
            &format!("/api/v1/admin/users/{id}"),
            json!({ "disabled": true }),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);

    let refused = server
        .post(
            "/api/v1/login",
            json!({ "email": "ia@example.com", "password": "ia password 1" }),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "account_disabled");
    let wrong = server
        .post(
            "/api/v1/login",
            json!({ "email": "ia@example.com", "password": "wrong password" }),
        )
        .await;
    assert_eq!(
        error_code(wrong).await,
        "invalid_credentials",
        "disabled state shown only with the right password"
    );
}

async fn unverified_login_allowed_when_not_required(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[FAST_HASHING, "[auth]\nrequire_verified_email = false\n"],
    )
    .await;
    server.sign_up("ja@example.com", "ja password 1").await;
    server.log_in("ja@example.com", "ja password 1").await;
}

mod throttling {
    use super::*;

    const THREE_FAILURES: &str = "[lockout]\nmax_failures = 3\nslow_down_after = 1000\nwindow = \"15m\"\nlock_duration = \"15m\"\n";

    async fn attempt(server: &TestServer, email: &str, password: &str) -> reqwest::Response {
        server
            .post(
                "/api/v1/login",
                json!({ "email": email, "password": password }),
            )
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_logins_are_throttled_per_address_without_revealing_accounts() {
        let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, THREE_FAILURES]).await;
        server
            .verified_user("th@example.com", "th password 1")
            .await;
        for email in ["th@example.com", "nobody@example.com"] {
            for _ in 0..3 {
                assert_eq!(
                    attempt(&server, email, "wrong password").await.status(),
                    StatusCode::UNAUTHORIZED
                );
            }
            let hashes = server.gatehouse.hasher().completed_operations();
            let throttled = attempt(&server, email, "th password 1").await;
            assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS, "{email}");
            assert_eq!(throttled.headers()["retry-after"], "900");
            assert_eq!(error_code(throttled).await, "too_many_attempts");
            assert_eq!(
                server.gatehouse.hasher().completed_operations(),
                hashes,
                "no hashing while throttled"
            );
        }
        // Other addresses are unaffected; after the window the account works again.
        server
            .verified_user("other@example.com", "other password 1")
            .await;
        server.advance(std::time::Duration::from_secs(15 * 60 + 1));
        server.log_in("th@example.com", "th password 1").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_success_resets_the_address() {
        let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, THREE_FAILURES]).await;
        server
            .verified_user("rs@example.com", "rs password 1")
            .await;
        for _ in 0..2 {
            attempt(&server, "rs@example.com", "wrong password").await;
        }
        server.log_in("rs@example.com", "rs password 1").await;
        for _ in 0..2 {
            attempt(&server, "rs@example.com", "wrong password").await;
        }
        server.log_in("rs@example.com", "rs password 1").await;
        // Failures per client IP are the rate limiter's (`[rate_limit.login]`): wrong
        // passwords for other addresses leave this one alone.
        for i in 0..4 {
            attempt(&server, &format!("spray{i}@example.com"), "wrong password").await;
        }
        server.log_in("rs@example.com", "rs password 1").await;
    }
}
