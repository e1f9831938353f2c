//! An app backend built with actix-web and `gatehouse-verify`'s `BearerClaims` extractor,
//! accepting Gatehouse tokens and refusing bad and revoked ones.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, get, web};
use gatehouse_tests::{Backend, TestServer};
use gatehouse_verify::{BearerClaims, Verifier, VerifyError};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[get("/orders")]
async fn orders(BearerClaims(claims): BearerClaims) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": claims.sub, "client": claims.client_id }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_accepts_gatehouse_tokens_and_refuses_revoked_ones() {
    let gatehouse = TestServer::start(Backend::Sqlite).await;
    let admin = gatehouse.admin("root@example.com").await;
    let (id, secret) = gatehouse.service_client(&admin, &[]).await;
    let user = gatehouse
        .verified_user("shop@example.com", "shop password 1")
        .await;

    let verifier = Verifier::builder(&gatehouse.base_url)
        .audience("gatehouse")
        .discover()
        .await
        .unwrap();
    let watcher = verifier.watch_revocations(&id, &secret);
    tokio::time::timeout(Duration::from_secs(10), watcher.wait_connected())
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    let data = web::Data::new(verifier.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).service(orders))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    tokio::spawn(server);

    let call = |token: &str| {
        let request = gatehouse
            .http
            .get(format!("{backend}/orders"))
            .bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let ok = call(&user.access).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let me: Value = gatehouse
        .get_as(&user.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok.json::<Value>().await.unwrap()["user"], me["id"]);

    let forged = call("not-a-token").await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        forged.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let missing = gatehouse
        .http
        .get(format!("{backend}/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);

    gatehouse
        .post_as(&user.access, "/api/v1/logout", json!({}))
        .await;
    tokio::time::timeout(Duration::from_secs(2), async {
        while !matches!(
            verifier.verify(&user.access).await,
            Err(VerifyError::Revoked)
        ) {
            let _ = tokio::time::timeout(Duration::from_millis(50), watcher.changed()).await;
        }
    })
    .await
    .expect("the revocation reaches the backend within 2 seconds");
    assert_eq!(call(&user.access).await.status(), StatusCode::UNAUTHORIZED);
    drop(handle.stop(false));
}
