//! Interoperability with an independent, OpenID-certified relying-party library outside
//! Rust: npm `openid-client` (`tests/oidc-client/flow.mjs`) discovers the provider, runs
//! the authorization code flow with PKCE through the hosted login (and consent) pages,
//! validates the ID token against the JWKS, and calls userinfo. Once as a public client
//! that asks for consent, once as a confidential first-party client (client_secret_basic).
//!
//! SQLite only: what is under test is the protocol as another library speaks it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use gatehouse_tests::{Backend, TestServer};
use serde_json::{Value, json};
use tokio::process::Command;

/// How long one run of the flow may take.
const FLOW_TIMEOUT: Duration = Duration::from_secs(30);

/// How to install openid-client, for a failure message.
const INSTALL_OPENID_CLIENT: &str =
    "run tests/run (or `npm ci` in tests/oidc-client, with Node.js 20 or newer)";

/// Registered for both clients; nothing listens there: the script stops at the redirect.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

const EMAIL: &str = "grace@example.com";
const PASSWORD: &str = "grace hopper password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_completes_the_code_flow() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin("admin@example.com").await;
    server.verified_user(EMAIL, PASSWORD).await;

    let (public_id, secret) = server
        .register_client(
            &admin,
            json!({
                "name": "Node app",
                "type": "public",
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": [],
                "redirect_uris": [REDIRECT_URI],
                "first_party": false,
            }),
        )
        .await;
    assert_eq!(secret, None);
    let stderr = check_flow(&server, &public_id, None).await;
    assert!(
        stderr.contains("POST /consent"),
        "a third-party client asks for consent: {stderr}"
    );

    let (confidential_id, secret) = server
        .register_client(
            &admin,
            json!({
                "name": "Node backend",
                "type": "confidential",
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": [],
                "redirect_uris": [REDIRECT_URI],
                "first_party": true,
            }),
        )
        .await;
    let secret = secret.expect("a confidential client has a secret");
    let stderr = check_flow(&server, &confidential_id, Some(&secret)).await;
    assert!(
        !stderr.contains("/consent"),
        "a first-party client skips consent: {stderr}"
    );
}

/// Runs the flow as `client_id` and checks what it reports; its standard error (the
/// redirect chain it walked).
async fn check_flow(server: &TestServer, client_id: &str, secret: Option<&str>) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/oidc-client/flow.mjs");
    let package = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/oidc-client/node_modules/openid-client/package.json"
    );
    assert!(
        std::path::Path::new(package).exists(),
        "{package} is missing: {INSTALL_OPENID_CLIENT}"
    );
    let mut command = Command::new("node");
    command
        .arg(script)
        .env("GATEHOUSE_ISSUER", &server.base_url)
        .env("CLIENT_ID", client_id)
        .env("REDIRECT_URI", REDIRECT_URI)
        .env("USER_EMAIL", EMAIL)
        .env("USER_PASSWORD", PASSWORD)
        .env("SCOPE", "openid email profile")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match secret {
        Some(secret) => command.env("CLIENT_SECRET", secret),
        None => command.env_remove("CLIENT_SECRET"),
    };
    let started = Instant::now();
    let output = tokio::time::timeout(FLOW_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("node {script} did not finish within {FLOW_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("could not run node {script}: {e}; {INSTALL_OPENID_CLIENT}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let hint = if stderr.contains("ERR_MODULE_NOT_FOUND") {
        format!("\na package is missing: {INSTALL_OPENID_CLIENT}")
    } else {
        String::new()
    };
    assert!(
        output.status.success(),
        "{script} failed ({}) as {client_id} after {:?}:\n{stderr}{stdout}{hint}",
        output.status,
        started.elapsed()
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}\n{stderr}"));
    let claims = &report["id_token_claims"];
    assert_eq!(report["email"], EMAIL, "{report}");
    assert_eq!(claims["iss"], server.base_url.as_str(), "{report}");
    let audience = match &claims["aud"] {
        Value::Array(audiences) => audiences.as_slice(),
        single => std::slice::from_ref(single),
    };
    assert_eq!(audience, [json!(client_id)], "{report}");
    assert!(
        claims["nonce"].as_str().is_some_and(|n| !n.is_empty()),
        "{report}"
    );
    assert!(
        claims["sub"].as_str().is_some_and(|s| !s.is_empty()),
        "{report}"
    );
    assert_eq!(report["userinfo"]["sub"], claims["sub"], "{report}");
    assert_eq!(report["userinfo"]["email"], EMAIL, "{report}");
    assert_eq!(report["sub"], claims["sub"], "{report}");
    stderr
}
