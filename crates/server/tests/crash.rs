//! Crash safety of the real process: a burst of sign-ups, logins, refreshes and password
//! reset requests runs concurrently, the server is killed with SIGKILL in the middle, and
//! restarted on the same database. Every request that got a success answer must be fully
//! there: the account with its verification token and the verification mail, the session
//! with a refresh token that works, the newest refresh token of each rotation (the one
//! before it refused), the reset mail with a link that works. Nothing is half-written.
//! On SQLite (the default) and on PostgreSQL when `GATEHOUSE_TEST_POSTGRES` is set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a step that fails must fail the test loudly"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the tests wait for a real process, polling with a deadline"
)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use support::{Db, Deployment, FAST, Instance, eventually};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a new password after the crash";
/// Accounts that log in and refresh during the burst.
const MEMBERS: usize = 3;
/// Accounts that each ask for one password reset during the burst.
const RESETTERS: usize = 6;

/// No grace for a rotated refresh token: presented again, it is refused. No rate limits:
/// the burst comes from one IP on purpose. A short mail lease (the deployment's
/// `mail.timeout` is 1 s): a mail the killed process had claimed (its SMTP dialogue cut by
/// the kill) is sent by the restarted one once the lease ends, within the catcher's wait.
fn settings() -> String {
    format!(
        "{FAST}[tokens]\nrefresh_reuse_grace = \"0s\"\n[rate_limit]\nenabled = false\n\
         [mail.outbox]\nlease = \"2s\"\n"
    )
}

/// What the burst got success answers for.
#[derive(Default)]
struct Answered {
    signups: Mutex<Vec<String>>,
    logins: Mutex<Vec<Value>>,
    resets: Mutex<Vec<String>>,
    /// Per refresh chain: the previous and the newest refresh token a 200 gave, and
    /// whether a refresh of the newest was sent and never answered (the kill came).
    chains: Mutex<Vec<Chain>>,
    successes: AtomicUsize,
}

#[derive(Clone, Debug)]
struct Chain {
    previous: Option<String>,
    newest: String,
    unanswered: bool,
}

fn body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Starts the burst: tasks that keep sending requests until the server goes away.
fn burst(
    server: &Instance,
    answered: &Arc<Answered>,
    stop: &Arc<AtomicBool>,
    first_refresh_tokens: Vec<String>,
) {
    let base = server.base_url.clone();
    let http = server.http.clone();
    // Sign-ups, each with an address of its own.
    for task in 0..3 {
        let (http, base, answered, stop) =
            (http.clone(), base.clone(), answered.clone(), stop.clone());
        tokio::spawn(async move {
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let email = format!("new{task}x{n}@example.com");
                let Ok(response) = http
                    .post(format!("{base}/api/v1/signup"))
                    .json(&json!({ "email": email, "password": PASSWORD }))
                    .send()
                    .await
                else {
                    break;
                };
                if response.status() == StatusCode::ACCEPTED {
                    answered.signups.lock().unwrap().push(email);
                    answered.successes.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    // Logins.
    for member in 0..MEMBERS {
        let (http, base, answered, stop) =
            (http.clone(), base.clone(), answered.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let Ok(response) = http
                    .post(format!("{base}/api/v1/login"))
                    .json(&json!({ "email": format!("member{member}@example.com"), "password": PASSWORD }))
                    .send()
                    .await
                else {
                    break;
                };
                let ok = response.status() == StatusCode::OK;
                let Ok(text) = response.text().await else {
                    break;
                };
                if ok {
                    answered.logins.lock().unwrap().push(body(&text));
                    answered.successes.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    // Refresh chains: one per member, rotating its refresh token again and again.
    for (index, first) in first_refresh_tokens.into_iter().enumerate() {
        answered.chains.lock().unwrap().push(Chain {
            previous: None,
            newest: first,
            unanswered: false,
        });
        let (http, base, answered, stop) =
            (http.clone(), base.clone(), answered.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let current = answered.chains.lock().unwrap()[index].newest.clone();
                answered.chains.lock().unwrap()[index].unanswered = true;
                let Ok(response) = http
                    .post(format!("{base}/api/v1/token/refresh"))
                    .json(&json!({ "refresh_token": current }))
                    .send()
                    .await
                else {
                    break;
                };
                let status = response.status();
                let Ok(text) = response.text().await else {
                    break;
                };
                assert_eq!(status, StatusCode::OK, "refresh: {text}");
                let next = body(&text)["refresh_token"].as_str().unwrap().to_owned();
                let mut chains = answered.chains.lock().unwrap();
                chains[index] = Chain {
                    previous: Some(current),
                    newest: next,
                    unanswered: false,
                };
                answered.successes.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // Password reset requests, one per account (a second within the mail cooldown would
    // send nothing).
    let (answered, stop) = (answered.clone(), stop.clone());
    tokio::spawn(async move {
        for n in 0..RESETTERS {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let email = format!("resetter{n}@example.com");
            let Ok(response) = http
                .post(format!("{base}/api/v1/password/forgot"))
                .json(&json!({ "email": email }))
                .send()
                .await
            else {
                break;
            };
            if response.status() == StatusCode::ACCEPTED {
                answered.resets.lock().unwrap().push(email);
                answered.successes.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
}

async fn count(deployment: &Deployment, sql: &str) -> i64 {
    let db = deployment.db().await;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn killed_in_the_middle_of_a_burst(db: Db) {
    let Some(deployment) = Deployment::new(db).await else {
        return;
    };
    for n in 0..MEMBERS {
        deployment
            .run(
                &[
                    "user",
                    "create",
                    "--email",
                    &format!("member{n}@example.com"),
                    "--verified",
                ],
                &format!("{PASSWORD}\n"),
            )
            .await;
    }
    for n in 0..RESETTERS {
        deployment
            .run(
                &[
                    "user",
                    "create",
                    "--email",
                    &format!("resetter{n}@example.com"),
                    "--verified",
                ],
                &format!("{PASSWORD}\n"),
            )
            .await;
    }
    let server = deployment.serve(&settings()).await;
    let port = server.port;
    let answered = Arc::new(Answered::default());
    // The first refresh token of each chain.
    let mut first_refresh_tokens = Vec::new();
    for n in 0..MEMBERS {
        let login = server
            .log_in(&format!("member{n}@example.com"), PASSWORD)
            .await;
        first_refresh_tokens.push(login["refresh_token"].as_str().unwrap().to_owned());
    }
    let stop = Arc::new(AtomicBool::new(false));
    burst(&server, &answered, &stop, first_refresh_tokens);
    // Kill once the burst is well under way: every kind of request has succeeded.
    eventually(Duration::from_secs(60), "the burst under way", || async {
        let going = answered.successes.load(Ordering::SeqCst) >= 60
            && answered.signups.lock().unwrap().len() >= 5
            && answered.logins.lock().unwrap().len() >= 5
            && answered.resets.lock().unwrap().len() >= RESETTERS / 2;
        going.then_some(())
    })
    .await;
    server.kill9().await;
    stop.store(true, Ordering::SeqCst);

    let server = deployment.serve_on(port, "", &settings()).await;
    let signups = answered.signups.lock().unwrap().clone();
    let logins = answered.logins.lock().unwrap().clone();
    let resets = answered.resets.lock().unwrap().clone();
    let chains = answered.chains.lock().unwrap().clone();
    eprintln!(
        "answered before the kill: {} sign-ups, {} logins, {} reset requests, {} refreshes",
        signups.len(),
        logins.len(),
        resets.len(),
        answered.successes.load(Ordering::SeqCst) - signups.len() - logins.len() - resets.len()
    );

    // Nothing half-written: every unverified account has its verification token, every
    // API session a refresh token.
    assert_eq!(
        count(
            &deployment,
            "SELECT COUNT(*) AS n FROM users u WHERE u.email_verified_at IS NULL AND NOT EXISTS \
             (SELECT 1 FROM one_time_tokens t WHERE t.user_id = u.id)"
        )
        .await,
        0,
        "an account without its verification token"
    );
    assert_eq!(
        count(
            &deployment,
            "SELECT COUNT(*) AS n FROM sessions s WHERE NOT EXISTS \
             (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id)"
        )
        .await,
        0,
        "a session without a refresh token"
    );

    // Every login that was answered: its session stands and its access token works.
    for login in &logins {
        let access = login["access_token"].as_str().unwrap();
        assert_eq!(
            server.get_as(access, "/api/v1/me").await.status(),
            StatusCode::OK,
            "an answered login's session is gone: {login}"
        );
    }
    // Every rotation that was answered: the newest token works and the one before it is
    // refused (no grace here). A refresh sent but never answered may have rotated the
    // newest too: then the client never saw the result, and either answer is right.
    for chain in &chains {
        let newest = server
            .post(
                "/api/v1/token/refresh",
                json!({ "refresh_token": chain.newest }),
            )
            .await
            .status();
        if chain.unanswered {
            assert!(
                newest == StatusCode::OK || newest == StatusCode::UNAUTHORIZED,
                "{newest}"
            );
        } else {
            assert_eq!(
                newest,
                StatusCode::OK,
                "the newest refresh token of {chain:?}"
            );
        }
        if let Some(previous) = &chain.previous {
            let old = server
                .post(
                    "/api/v1/token/refresh",
                    json!({ "refresh_token": previous }),
                )
                .await
                .status();
            assert_eq!(
                old,
                StatusCode::UNAUTHORIZED,
                "a rotated refresh token works"
            );
        }
    }
    // Every sign-up that was answered: the account is there and its verification mail
    // arrives (now, from the restarted server, if the kill came before it was sent),
    // with a link that verifies it.
    for email in &signups {
        let mail = deployment.mail.wait_for(email, "Confirm your email").await;
        let verified = server
            .post(
                "/api/v1/email/verify",
                json!({ "token": gatehouse_tests::token_of(&mail.link()) }),
            )
            .await;
        assert_eq!(verified.status(), StatusCode::OK, "verifying {email}");
        server.log_in(email, PASSWORD).await;
    }
    // Every reset request that was answered: the mail arrives, and its link works.
    for email in &resets {
        let mail = deployment.mail.wait_for(email, "Reset your").await;
        let reset = server
            .post(
                "/api/v1/password/reset",
                json!({ "token": gatehouse_tests::token_of(&mail.link()), "password": NEW_PASSWORD }),
            )
            .await;
        assert!(
            reset.status().is_success(),
            "resetting {email}: {}",
            reset.status()
        );
        server.log_in(email, NEW_PASSWORD).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_kill_in_the_middle_of_a_burst_loses_nothing_that_was_answered() {
    killed_in_the_middle_of_a_burst(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_kill_in_the_middle_of_a_burst_loses_nothing_that_was_answered() {
    killed_in_the_middle_of_a_burst(Db::Postgres).await;
}
