//! The actix-web extractor answers for the handler when the token is missing or refused.

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpResponse, test, web};
use serde_json::Value;

use super::{KEYS, verifier};
use crate::BearerClaims;
use crate::test_keys::user_claims;

const SID: &str = "0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f";

async fn me(BearerClaims(claims): BearerClaims) -> HttpResponse {
    HttpResponse::Ok().body(claims.sub)
}

#[actix_web::test]
async fn the_extractor_passes_good_tokens_and_answers_401_for_the_rest() {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(verifier()))
            .route("/me", web::get().to(me)),
    )
    .await;
    let good = KEYS.eddsa.sign(&user_claims(SID));

    for scheme in ["Bearer", "bearer", "BEARER"] {
        let request = test::TestRequest::get()
            .uri("/me")
            .insert_header((header::AUTHORIZATION, format!("{scheme} {good}")))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
        assert_eq!(
            test::read_body(response).await,
            user_claims(SID)["sub"].as_str().unwrap()
        );
    }

    let request = test::TestRequest::get().uri("/me").to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer"
    );
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["error"], "missing_token");

    for authorization in [
        format!("Basic {good}"),
        "Bearer ".to_owned(),
        format!("Bearer {good} x"),
    ] {
        let request = test::TestRequest::get()
            .uri("/me")
            .insert_header((header::AUTHORIZATION, authorization.clone()))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:.20}"
        );
    }

    let verifier = verifier();
    verifier.revoke_session_locally(SID, i64::MAX);
    let revoked_app = test::init_service(
        App::new()
            .app_data(web::Data::new(verifier))
            .route("/me", web::get().to(me)),
    )
    .await;
    let request = test::TestRequest::get()
        .uri("/me")
        .insert_header((header::AUTHORIZATION, format!("Bearer {good}")))
        .to_request();
    let response = test::call_service(&revoked_app, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
        r#"Bearer error="invalid_token""#
    );
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["message"], "the token's session was revoked");
}

#[actix_web::test]
async fn without_a_registered_verifier_the_extractor_answers_500() {
    let app = test::init_service(App::new().route("/me", web::get().to(me))).await;
    let request = test::TestRequest::get()
        .uri("/me")
        .insert_header((
            header::AUTHORIZATION,
            format!("Bearer {}", KEYS.rs256.sign(&user_claims(SID))),
        ))
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["error"], "server_error");
}
