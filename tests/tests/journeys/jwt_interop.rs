//! Tokens of every signing algorithm, verified by an independent library outside Rust
//! (PyJWT with its JWKS client) and by `gatehouse-verify`; tampered tokens refused by both.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::{Backend, FAST_HASHING, TestServer};
use gatehouse_verify::{Verifier, VerifyError};
use serde_json::{Value, json};

/// Variants of a valid token, each changed in one part.
fn tampered(token: &str) -> Vec<(String, &'static str)> {
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());

    let mut header = decode(parts[0]);
    header["alg"] = json!("HS256");
    let mut claims = decode(parts[1]);
    claims["sub"] = json!("someone-else");
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[10] ^= 0x01;
    let mut none_header = decode(parts[0]);
    none_header["alg"] = json!("none");
    vec![
        (
            format!("{}.{}.{}", encode(&header), parts[1], parts[2]),
            "header",
        ),
        (
            format!("{}.{}.{}", parts[0], encode(&claims), parts[2]),
            "payload",
        ),
        (
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                URL_SAFE_NO_PAD.encode(signature)
            ),
            "signature",
        ),
        (
            format!("{}.{}.", encode(&none_header), parts[1]),
            "alg none",
        ),
    ]
}

/// How to install PyJWT, for a failure message.
const INSTALL_PYJWT: &str = "run tests/run (or `python3 -m pip install 'pyjwt[crypto]>=2.10'`)";

fn pyjwt(server: &TestServer, audience: &str, tokens: &[String]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/verify_with_pyjwt.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("could not run python3: {e}; install Python 3, then {INSTALL_PYJWT}")
        });
    let request = json!({
        "jwks_uri": server.url("/.well-known/jwks.json"),
        "issuer": server.base_url,
        "audience": audience,
        "tokens": tokens,
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("ModuleNotFoundError") {
        format!("\nPyJWT is missing: {INSTALL_PYJWT}")
    } else {
        String::new()
    };
    assert!(
        output.status.success(),
        "PyJWT script failed: {stderr}{hint}"
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn every_algorithm_interoperates(algorithm: &str) {
    let setting = format!("[tokens]\nsigning_alg = \"{algorithm}\"\n");
    let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, &setting]).await;
    let admin = server.admin("root@example.com").await;
    let user = server
        .verified_user("jwt@example.com", "jwt password 1")
        .await;
    let (id, secret) = server.service_client(&admin, &[]).await;
    let service: Value = server
        .post_form(
            "/oauth2/token",
            (&id, &secret),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    let service_token = service["access_token"].as_str().unwrap().to_owned();

    let mut tokens = vec![user.access.clone(), service_token.clone()];
    let bad = tampered(&user.access);
    tokens.extend(bad.iter().map(|(t, _)| t.clone()));
    let results = pyjwt(&server, "gatehouse", &tokens);
    assert_eq!(
        results[0]["valid"], true,
        "PyJWT accepts the user token: {}",
        results[0]
    );
    assert_eq!(results[0]["alg"], algorithm);
    assert_eq!(
        results[1]["valid"], true,
        "PyJWT accepts the service token: {}",
        results[1]
    );
    for ((_, part), result) in bad.iter().zip(&results[2..]) {
        assert_eq!(
            result["valid"], false,
            "PyJWT refuses a token tampered in its {part}: {result}"
        );
    }

    let verifier = Verifier::builder(&server.base_url)
        .audience("gatehouse")
        .discover()
        .await
        .expect("discovery");
    let claims = verifier
        .verify(&user.access)
        .await
        .expect("gatehouse-verify accepts the user token");
    assert_eq!(
        claims.sid.as_deref(),
        Some(user.session_id.to_string().as_str())
    );
    assert_eq!(claims.client_id, "gatehouse-api");
    let service_claims = verifier
        .verify(&service_token)
        .await
        .expect("and the service token");
    assert_eq!(service_claims.sub, id);
    for (token, part) in &bad {
        let refused = verifier.verify(token).await;
        assert!(
            refused.is_err(),
            "gatehouse-verify refuses a token tampered in its {part}"
        );
    }
    // The server refuses them too.
    for (token, part) in &bad {
        assert_eq!(
            server.get_as(token, "/api/v1/me").await.status(),
            reqwest::StatusCode::UNAUTHORIZED,
            "{part}"
        );
    }
    let wrong_audience = Verifier::builder(&server.base_url)
        .audience("orders-api")
        .discover()
        .await
        .unwrap();
    assert!(matches!(
        wrong_audience.verify(&user.access).await,
        Err(VerifyError::WrongAudience)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_interoperate() {
    every_algorithm_interoperates("RS256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_interoperate() {
    every_algorithm_interoperates("ES256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_interoperate() {
    every_algorithm_interoperates("EdDSA").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algorithm_confusion_is_refused() {
    // An HS256 token whose HMAC key is the server's public RSA key, as an attacker who
    // read the JWKS would forge it.
    let server = TestServer::start(Backend::Sqlite).await;
    let user = server
        .verified_user("conf@example.com", "conf password 1")
        .await;
    let jwks: Value = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(user.access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = jwk["kid"].as_str().map(str::to_owned);
    for secret in [jwk.to_string(), jwk["n"].as_str().unwrap().to_owned()] {
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            server.get_as(&forged, "/api/v1/me").await.status(),
            reqwest::StatusCode::UNAUTHORIZED
        );
        let verifier = Verifier::builder(&server.base_url)
            .audience("gatehouse")
            .discover()
            .await
            .unwrap();
        assert!(verifier.verify(&forged).await.is_err());
        assert_eq!(pyjwt(&server, "gatehouse", &[forged])[0]["valid"], false);
    }
}
