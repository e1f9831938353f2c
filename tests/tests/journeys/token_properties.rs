//! Property tests of the tokens Gatehouse hands out, through the API a client uses: an
//! access token or a refresh token altered in any byte is refused (`401`), and arbitrary
//! bytes as a token are refused the same way, never a `5xx`.

use gatehouse_tests::{Backend, TestServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::json;

/// Runs `check` for each generated case (its requests block in place on the test's runtime).
fn run_cases<S: Strategy>(
    strategy: S,
    cases: u32,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, check);
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// `token` with the byte at `at` replaced (when that changes it).
fn altered(token: &str, at: prop::sample::Index, replacement: u8) -> Option<String> {
    let mut bytes = token.as_bytes().to_vec();
    let at = at.index(bytes.len());
    if bytes[at] == replacement {
        return None;
    }
    bytes[at] = replacement;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_altered_in_any_byte_or_made_up_are_refused() {
    // Hundreds of requests from one address: the rate limiter would answer 429.
    let server =
        TestServer::start_with(Backend::Sqlite, &["[rate_limit]\nenabled = false\n"]).await;
    let tokens = server
        .verified_user("props@example.com", "correct horse 1")
        .await;
    let runtime = tokio::runtime::Handle::current();

    let me = |token: &str| {
        tokio::task::block_in_place(|| {
            runtime.block_on(async {
                server
                    .http
                    .get(server.url("/api/v1/me"))
                    .header("authorization", format!("Bearer {token}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
    };
    assert_eq!(me(&tokens.access), StatusCode::OK);

    // An access token (a JWT) altered in any one byte.
    run_cases(
        (any::<prop::sample::Index>(), any::<u8>()),
        128,
        |(at, replacement)| {
            let Some(token) = altered(&tokens.access, at, replacement) else {
                return Ok(());
            };
            if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
                return Ok(());
            }
            let status = me(&token);
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "accepted: {}", token);
            Ok(())
        },
    );

    // Made-up tokens: printable junk with dots in it.
    run_cases("[!-~]{0,300}", 128, |token| {
        let status = me(&token);
        prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", token);
        Ok(())
    });

    // The opaque refresh token altered in any one byte: refused, and the real one still
    // works afterwards (the refusals did not burn it).
    let refresh = |token: &str| {
        tokio::task::block_in_place(|| {
            runtime.block_on(async {
                server
                    .post("/api/v1/token/refresh", json!({ "refresh_token": token }))
                    .await
                    .status()
            })
        })
    };
    run_cases(
        (any::<prop::sample::Index>(), any::<u8>()),
        64,
        |(at, replacement)| {
            let Some(token) = altered(&tokens.refresh, at, replacement) else {
                return Ok(());
            };
            let status = refresh(&token);
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "accepted: {}", token);
            Ok(())
        },
    );
    assert_eq!(refresh(&tokens.refresh), StatusCode::OK);
}
