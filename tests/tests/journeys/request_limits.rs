//! The explicit limits on a request's shape (`[server]` max_header_bytes,
//! max_header_count, max_path_bytes, max_query_bytes, max_json_depth): each answers its
//! status and stable code, each moves with its setting. The limits are checked before
//! any database access, so these journeys run on SQLite only. Requests that reqwest
//! would refuse or reshape are written byte by byte on a TCP stream.

use gatehouse_tests::{Backend, FAST_HASHING, TestServer, error_code};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SMALL_LIMITS: &str = "[server]\nmax_header_count = 10\nmax_header_bytes = 1024\nmax_path_bytes = 100\nmax_query_bytes = 200\nmax_json_depth = 3\n";

async fn small_limits() -> TestServer {
    TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, SMALL_LIMITS]).await
}

/// A raw HTTP/1.1 exchange: the status and the body of the answer.
async fn raw(server: &TestServer, head: &str, body: &[u8]) -> (u16, String) {
    let address = server.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `GET /healthz` with `extra` headers after `Host` and `Connection` (so `extra + 2`
/// headers in all).
fn get_with_headers(extra: &[(String, String)]) -> String {
    let mut head =
        "GET /healthz HTTP/1.1\r\nHost: gatehouse.test\r\nConnection: close\r\n".to_owned();
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

fn fillers(count: usize, value_len: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("x-filler-{i}"), "v".repeat(value_len)))
        .collect()
}

fn code_of(body: &str) -> String {
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_headers_get_431() {
    let server = small_limits().await;
    // Host + Connection + 8 = 10 headers: at the limit.
    let (status, _) = raw(&server, &get_with_headers(&fillers(8, 4)), b"").await;
    assert_eq!(status, 200);
    let (status, body) = raw(&server, &get_with_headers(&fillers(9, 4)), b"").await;
    assert_eq!(status, 431);
    assert_eq!(code_of(&body), "headers_too_large");

    // The same 11 headers pass under the default limit (64): the setting is what counts.
    let defaults = TestServer::start(Backend::Sqlite).await;
    let (status, _) = raw(&defaults, &get_with_headers(&fillers(9, 4)), b"").await;
    assert_eq!(status, 200);
    let (status, body) = raw(&defaults, &get_with_headers(&fillers(63, 4)), b"").await;
    assert_eq!(status, 431, "65 headers are over the default 64");
    assert_eq!(code_of(&body), "headers_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_header_bytes_get_431() {
    let server = small_limits().await;
    // Names and values: "host" + "gatehouse.test" + "connection" + "close" = 33 bytes.
    let fits = vec![("x-big".to_owned(), "v".repeat(1024 - 33 - 5))];
    let (status, _) = raw(&server, &get_with_headers(&fits), b"").await;
    assert_eq!(status, 200);
    let over = vec![("x-big".to_owned(), "v".repeat(1024 - 33 - 5 + 1))];
    let (status, body) = raw(&server, &get_with_headers(&over), b"").await;
    assert_eq!(status, 431);
    assert_eq!(code_of(&body), "headers_too_large");

    // A cookie counts like any header: a browser's oversized cookie is refused the same.
    let response = server
        .http
        .get(server.url("/login"))
        .header("cookie", format!("gatehouse={}", "c".repeat(2000)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(error_code(response).await, "headers_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_paths_and_query_strings_get_414() {
    let server = small_limits().await;
    let path_at_limit = format!("/{}", "p".repeat(99));
    let response = server
        .http
        .get(server.url(&path_at_limit))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "100 bytes: routed"
    );
    let long_path = format!("/{}", "p".repeat(100));
    let response = server
        .http
        .get(server.url(&long_path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(error_code(response).await, "uri_too_long");

    // The query string is measured as sent, without the `?`.
    let query_at_limit = format!("/healthz?q={}", "a".repeat(198));
    let response = server
        .http
        .get(server.url(&query_at_limit))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let long_query = format!("/healthz?q={}", "a".repeat(199));
    let response = server
        .http
        .get(server.url(&long_query))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(error_code(response).await, "uri_too_long");

    // An OAuth authorization request with a huge query is refused before it is parsed.
    let authorize = format!(
        "/oauth2/authorize?response_type=code&client_id=x&state={}",
        "s".repeat(300)
    );
    let response = server
        .http
        .get(server.url(&authorize))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);

    // Percent-encoding counts as sent: 34 encoded characters are 102 bytes.
    let (status, body) = raw(
        &server,
        &format!(
            "GET /{} HTTP/1.1\r\nHost: gatehouse.test\r\nConnection: close\r\n\r\n",
            "%41".repeat(34)
        ),
        b"",
    )
    .await;
    assert_eq!(status, 414);
    assert_eq!(code_of(&body), "uri_too_long");
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_refused_before_parsing() {
    let server = small_limits().await;
    let signup = |body: String| {
        server
            .http
            .post(server.url("/api/v1/signup"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Depth 1 (the object) + 3 arrays = 4 > 3.
    let response = signup(format!(
        r#"{{"email": "ann@example.com", "password": "a long enough password", "x": {}}}"#,
        nested(3)
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nest deeper than 3"),
        "names the limit: {body}"
    );

    // Far past serde_json's own recursion limit: the same clear answer, not the parser's.
    let response = signup(nested(20_000)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nest deeper than 3")
    );

    // Brackets inside strings are text, not nesting; the body still reaches the handler.
    let response = signup(
        json!({ "email": "ann@example.com", "password": "[[[[[[[[{{{{{{{{ long enough" })
            .to_string(),
    )
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the checked body is passed on"
    );

    // A `+json` type is a JSON body too.
    let response = server
        .http
        .post(server.url("/api/v1/login"))
        .header("content-type", "application/merge-patch+json")
        .body(nested(5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nest deeper than 3")
    );

    // A chunked JSON body (no Content-Length) over the body limit: 413, not read further.
    let chunk = format!("{:x}\r\n{}\r\n", 70 * 1024, "x".repeat(70 * 1024));
    let (status, body) = raw(
        &server,
        "POST /api/v1/signup HTTP/1.1\r\nHost: gatehouse.test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        format!("{chunk}0\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(code_of(&body), "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_json_depth_admits_every_request_gatehouse_takes() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin("root@example.com").await;
    // A client registration is among the deepest bodies (object > array): it passes.
    let (client_id, _) = server
        .register_client(
            &admin,
            json!({
                "name": "Deep enough",
                "type": "public",
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": [],
                "redirect_uris": ["https://app.example/callback"],
                "first_party": false,
            }),
        )
        .await;
    assert!(!client_id.is_empty());
    // 17 levels are over the default 16.
    let response = server
        .post_as(
            &admin.access,
            "/api/v1/admin/clients",
            serde_json::from_str(&nested(17)).unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nest deeper than 16")
    );
}
