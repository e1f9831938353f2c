//! Impersonation: an admin opens a short session as a user, marked as the admin's in
//! every token and in the audit log, and unable to change credentials; its one-time link
//! shows it on the hosted pages under a banner.

use std::time::Duration;

use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, TestServer, decode_claims, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    an_admin_sees_the_account_as_the_user_and_is_named_in_the_token,
    an_impersonated_session_cannot_change_credentials,
    only_fresh_admins_impersonate_and_never_admins_or_themselves,
    an_impersonation_ends_when_its_admin_loses_the_role,
    the_browser_link_opens_the_session_once_under_a_banner,
    an_admins_new_password_ends_what_they_opened,
);

const PASSWORD: &str = "impersonated password 1";

async fn id_of(server: &TestServer, access: &str) -> String {
    let me: Value = server
        .get_as(access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn impersonate(server: &TestServer, admin: &str, user_id: &str) -> reqwest::Response {
    server
        .post_as(
            admin,
            &format!("/api/v1/admin/users/{user_id}/impersonate"),
            json!({}),
        )
        .await
}

async fn an_admin_sees_the_account_as_the_user_and_is_named_in_the_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = id_of(&server, &admin.access).await;
    let user = server.verified_user("ia@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;

    let response = impersonate(&server, &admin.access, &user_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["scope"], "gatehouse:account");
    let token = body["access_token"].as_str().unwrap();
    let claims = decode_claims(token);
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["act"], json!({ "sub": admin_id }));
    let me: Value = server
        .get_as(token, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ia@example.com");
    assert_eq!(me["impersonated_by"], admin_id.as_str());
    let me: Value = server
        .get_as(&user.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["impersonated_by"],
        Value::Null,
        "the user's own session is not marked"
    );
    // Never the admin API, even when the user would be one.
    let admin_api = server.get_as(token, "/api/v1/admin/users").await;
    assert_eq!(admin_api.status(), StatusCode::FORBIDDEN);

    let audit: Value = server
        .get_as(
            &admin.access,
            "/api/v1/admin/audit?event=impersonation_started",
        )
        .await
        .json()
        .await
        .unwrap();
    let event = &audit["events"][0];
    assert_eq!(event["actor_user_id"], admin_id.as_str());
    assert_eq!(event["subject_user_id"], user_id.as_str());
    assert_eq!(event["session_id"], body["session_id"]);

    // The user (or an admin) ending the user's sessions ends this one too.
    let revoked = server
        .post_as(
            &admin.access,
            &format!("/api/v1/admin/users/{user_id}/sessions/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn an_impersonated_session_cannot_change_credentials(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let user = server.verified_user("ib@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;
    let body: Value = impersonate(&server, &admin.access, &user_id)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let attempts = [
        server
            .post_as(
                token,
                "/api/v1/password/change",
                json!({ "current_password": PASSWORD, "new_password": "taken over 2" }),
            )
            .await,
        server
            .post_as(
                token,
                "/api/v1/reauthenticate",
                json!({ "password": PASSWORD }),
            )
            .await,
        server.post_as(token, "/api/v1/mfa/totp", json!({})).await,
        server.delete_as(token, "/api/v1/mfa/totp").await,
        server
            .post_as(token, "/api/v1/mfa/recovery-codes", json!({}))
            .await,
    ];
    for response in attempts {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(response).await, "impersonated_session");
    }
    // The password is still the user's.
    server.log_in("ib@example.com", PASSWORD).await;
}

async fn only_fresh_admins_impersonate_and_never_admins_or_themselves(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = id_of(&server, &admin.access).await;
    let other_admin = server.admin("second@example.com").await;
    let other_admin_id = id_of(&server, &other_admin.access).await;
    let user = server.verified_user("ic@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;

    let by_user = impersonate(&server, &user.access, &user_id).await;
    assert_eq!(by_user.status(), StatusCode::FORBIDDEN);
    let admin_target = impersonate(&server, &admin.access, &other_admin_id).await;
    assert_eq!(admin_target.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(admin_target).await, "cannot_impersonate_admin");
    let own = impersonate(&server, &admin.access, &admin_id).await;
    assert_eq!(error_code(own).await, "cannot_modify_self");
    let unknown = impersonate(&server, &admin.access, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    server.advance(Duration::from_secs(16 * 60));
    let refreshed: Value = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": admin.refresh }),
        )
        .await
        .json()
        .await
        .unwrap();
    let stale = impersonate(
        &server,
        refreshed["access_token"].as_str().unwrap(),
        &user_id,
    )
    .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");
}

async fn an_impersonation_ends_when_its_admin_loses_the_role(backend: Backend) {
    let server = TestServer::start(backend).await;
    let root = server.admin("root@example.com").await;
    let helper = server.admin("helper@example.com").await;
    let helper_id = id_of(&server, &helper.access).await;
    let user = server.verified_user("id@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;
    let body: Value = impersonate(&server, &helper.access, &user_id)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    let demoted = server
        .patch_as(
            &root.access,
            &format!("/api/v1/admin/users/{helper_id}"),
            json!({ "role": "user" }),
        )
        .await;
    assert_eq!(demoted.status(), StatusCode::OK);
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}

const BANNER: &str = r#"class="impersonation-banner""#;
const APP: &str = "http://127.0.0.1:9/callback";

/// Posts an impersonation's link with this browser's CSRF token.
async fn open_link(walker: &PageWalker, server: &TestServer, link: &str) -> reqwest::Response {
    let page = walker.get(link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_token(&page.text().await.unwrap());
    let token = gatehouse_tests::token_of(link);
    walker
        .post(
            &server.url("/impersonate"),
            &[("csrf_token", &csrf), ("token", &token)],
        )
        .await
}

async fn the_browser_link_opens_the_session_once_under_a_banner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (client_id, _) = server
        .register_client(
            &admin,
            json!({
                "name": "Photo app", "type": "public", "first_party": true,
                "grant_types": ["authorization_code"], "redirect_uris": [APP],
            }),
        )
        .await;
    let user = server.verified_user("ib@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;
    server.verified_user("own@example.com", PASSWORD).await;
    // The admin's browser is signed in as someone else: a normal login has no banner.
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, "own@example.com", PASSWORD)
        .await;
    let own = walker.get(&server.url("/account/sessions")).await;
    assert!(!own.text().await.unwrap().contains(BANNER));

    let body: Value = impersonate(&server, &admin.access, &user_id)
        .await
        .json()
        .await
        .unwrap();
    let link = body["browser_url"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&server.url("/impersonate?token=")),
        "{link}"
    );
    // Opening the link changes nothing; posting its form does.
    let page = walker.get(&link).await;
    assert!(!page.text().await.unwrap().contains(BANNER));
    let opened = open_link(&walker, &server, &link).await;
    assert_eq!(location(&opened).as_str(), server.url("/account/sessions"));
    let account = walker
        .get(&server.url("/account/sessions"))
        .await
        .text()
        .await
        .unwrap();
    assert!(account.contains("Signed in as ib@example.com"), "{account}");
    let banner = account.split(BANNER).nth(1).expect("the banner");
    assert!(
        banner.contains("<strong>ib@example.com</strong>"),
        "{banner}"
    );
    for link in ["/account/delete", "/account/email", "/account/mfa"] {
        assert!(
            !account.contains(&format!(r#"href="{link}""#)),
            "no link to {link}"
        );
    }

    // Used once: another browser (or this one again) gets nothing from it.
    let other = PageWalker::new();
    let reused = open_link(&other, &server, &link).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert!(reused.text().await.unwrap().contains("already used"));

    // The browser is held to the token's rules: no sensitive page, no proving itself
    // fresh, no sign-in to an application.
    for page in ["/account/delete", "/account/email", "/account/mfa"] {
        let refused = walker.get(&server.url(page)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{page}");
    }
    let csrf = csrf_token(&account);
    let fresh = walker
        .post(
            &server.url("/reauthenticate"),
            &[("csrf_token", &csrf), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(fresh.status(), StatusCode::FORBIDDEN);
    let mfa = walker
        .post(&server.url("/account/mfa/totp"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(mfa.status(), StatusCode::FORBIDDEN);
    let authorize = walker
        .get(&server.url(&format!(
            "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={APP}\
             &scope=openid&state=s1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256"
        )))
        .await;
    assert_eq!(authorize.status(), StatusCode::BAD_REQUEST);
    assert!(
        authorize
            .text()
            .await
            .unwrap()
            .contains("cannot sign in to applications")
    );
    // An app asking silently gets an error back, as for no login.
    let silent = walker
        .get(&server.url(&format!(
            "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={APP}\
             &scope=openid&state=s2&prompt=none\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256"
        )))
        .await;
    let back = location(&silent);
    assert!(back.as_str().starts_with(APP), "{back}");
    assert!(
        back.query_pairs()
            .any(|(k, v)| k == "error" && v == "login_required"),
        "{back}"
    );

    // A later link expires unused.
    let later: Value = impersonate(&server, &admin.access, &user_id)
        .await
        .json()
        .await
        .unwrap();
    server.advance(Duration::from_secs(3 * 60));
    let expired = open_link(&other, &server, later["browser_url"].as_str().unwrap()).await;
    assert_eq!(expired.status(), StatusCode::BAD_REQUEST);

    // Ending it ("End it" on the banner: the logout page) ends the session the token
    // shares; a login in the same browser has no banner.
    let logout = walker
        .get(&server.url("/logout"))
        .await
        .text()
        .await
        .unwrap();
    assert!(logout.contains(BANNER));
    walker
        .post(
            &server.url("/logout"),
            &[("csrf_token", &csrf_token(&logout))],
        )
        .await;
    let token = body["access_token"].as_str().unwrap();
    let me = server.get_as(token, "/api/v1/me").await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    // What the session did is the admin's, done to the user.
    let admin_id = id_of(&server, &admin.access).await;
    let audit: Value = server
        .get_as(&admin.access, "/api/v1/admin/audit?event=logout")
        .await
        .json()
        .await
        .unwrap();
    let event = &audit["events"][0];
    assert_eq!(event["session_id"], body["session_id"], "{audit}");
    assert_eq!(event["actor_user_id"], admin_id.as_str());
    assert_eq!(event["subject_user_id"], user_id.as_str());
    walker
        .log_in(&server.base_url, "own@example.com", PASSWORD)
        .await;
    let own = walker.get(&server.url("/account/sessions")).await;
    let own = own.text().await.unwrap();
    assert!(own.contains("Signed in as own@example.com"));
    assert!(!own.contains(BANNER));
    let body: Value = impersonate(&server, &admin.access, &user_id)
        .await
        .json()
        .await
        .unwrap();
    let third = PageWalker::new();
    let opened = open_link(&third, &server, body["browser_url"].as_str().unwrap()).await;
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    let account = third.get(&server.url("/account/sessions")).await;
    assert!(account.text().await.unwrap().contains(BANNER));
    // Its end signs the browser out.
    server.advance(Duration::from_secs(16 * 60));
    let ended = third.get(&server.url("/account/sessions")).await;
    assert_eq!(location(&ended).path(), "/login");
}

async fn an_admins_new_password_ends_what_they_opened(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let user = server.verified_user("ic@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;
    let opened: Value = impersonate(&server, &admin.access, &user_id)
        .await
        .json()
        .await
        .unwrap();
    let token = opened["access_token"].as_str().unwrap();
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    // Perhaps the admin's password was stolen: a new one ends the admin's other
    // sessions, and with them the sessions they opened as others, link included.
    let changed = server
        .post_as(
            &admin.access,
            "/api/v1/password/change",
            json!({ "current_password": "admin password 1", "new_password": "admin password 2" }),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let walker = PageWalker::new();
    let refused = open_link(&walker, &server, opened["browser_url"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    // The user's own session is not the admin's to end.
    assert_eq!(
        server.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}
