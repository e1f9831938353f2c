//! Signing in with an upstream provider: the `github` kind against a local server that
//! speaks GitHub's OAuth and user endpoints, and the `oidc` kind against a second
//! Gatehouse instance (a real OpenID Connect provider over real HTTP). First sign-in,
//! returning sign-in, the state bound to the browser and used once, the account takeover
//! attempts (an existing address, verified upstream or not), linking after the password,
//! unlinking (never the last way in, after step-up), and the second factor.

use std::time::Duration;

use gatehouse_tests::github::{FakeGitHub, GitHubUser};
use gatehouse_tests::oidc_provider::{FakeOidcProvider, Spoil};
use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, FAST_HASHING, Listener, TestServer, on_both_databases};
use reqwest::{Response, StatusCode, Url};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::mfa::{PASSWORD as MFA_PASSWORD, code_now, enrolled_user};

on_both_databases!(
    a_first_github_sign_in_makes_a_verified_account_and_signs_in_again,
    an_unverified_github_address_makes_no_account,
    the_state_belongs_to_the_browser_that_started_and_is_used_once,
    a_verified_upstream_address_of_an_account_links_only_after_its_password,
    an_unverified_upstream_address_never_reaches_an_existing_account,
    a_pending_link_is_not_given_to_another_account,
    unlinking_needs_step_up_and_keeps_a_way_to_sign_in,
    a_linked_provider_does_not_skip_the_second_factor,
    linking_from_the_account_page_needs_step_up_and_a_free_identity,
    guessed_passwords_do_not_lock_a_known_browser_out_of_its_provider,
    another_gatehouse_as_an_openid_connect_provider,
    an_account_without_a_password_proves_itself_at_its_provider,
);

const PASSWORD: &str = "federation password 1";

fn octocat(email: &str, verified: bool) -> GitHubUser {
    GitHubUser {
        id: 583231,
        login: "octocat".to_owned(),
        email: email.to_owned(),
        verified,
    }
}

async fn with_github(backend: Backend) -> (TestServer, FakeGitHub) {
    let github = FakeGitHub::start();
    let settings = github.provider_settings();
    let server = TestServer::start_with(backend, &[FAST_HASHING, &settings]).await;
    (server, github)
}

/// Starts a sign-in in `walker` and goes through the provider (which answers at once);
/// returns the callback URL the provider sends the browser back to, not yet visited.
async fn callback_url(server: &TestServer, walker: &PageWalker, provider: &str) -> Url {
    let start = walker.get(&server.url(&format!("/login/{provider}"))).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let at_provider = walker.get(location(&start).as_str()).await;
    assert!(
        at_provider.status().is_redirection(),
        "{}",
        at_provider.status()
    );
    location(&at_provider)
}

/// A whole sign-in at the fake GitHub; the callback's response.
async fn via_github(server: &TestServer, walker: &PageWalker) -> Response {
    let callback = callback_url(server, walker, "github").await;
    walker.get(callback.as_str()).await
}

/// The account page's HTML, or `None` when the browser is not logged in.
async fn account_page(server: &TestServer, walker: &PageWalker) -> Option<String> {
    let page = walker.get(&server.url("/account/sessions")).await;
    match page.status() {
        StatusCode::OK => Some(page.text().await.unwrap()),
        StatusCode::SEE_OTHER => None,
        status => panic!("the account page answered {status}"),
    }
}

async fn user_row(server: &TestServer, email: &str) -> Option<gatehouse_entity::users::Model> {
    gatehouse_entity::users::Entity::find()
        .filter(gatehouse_entity::users::Column::Email.eq(email))
        .one(server.gatehouse.db())
        .await
        .unwrap()
}

async fn identities_of(server: &TestServer, user_id: uuid::Uuid) -> u64 {
    gatehouse_entity::federated_identities::Entity::find()
        .filter(gatehouse_entity::federated_identities::Column::UserId.eq(user_id))
        .count(server.gatehouse.db())
        .await
        .unwrap()
}

async fn a_first_github_sign_in_makes_a_verified_account_and_signs_in_again(backend: Backend) {
    let (server, github) = with_github(backend).await;
    github.sign_in_as(octocat("octo@example.com", true));

    // The login and sign-up pages have the button.
    for page in ["/login", "/signup"] {
        let html = server
            .http
            .get(server.url(page))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("href=\"/login/github\""), "{page}: {html}");
    }

    let walker = PageWalker::new();
    let signed_in = via_github(&server, &walker).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_in).path(), "/account/sessions");
    let page = account_page(&server, &walker).await.expect("logged in");
    assert!(page.contains("octo@example.com"), "{page}");
    assert!(page.contains("GitHub"), "{page}");

    let user = user_row(&server, "octo@example.com")
        .await
        .expect("account");
    assert!(
        user.email_verified_at.is_some(),
        "GitHub verified the address"
    );
    assert_eq!(github.exchanges(), 1);

    // Another browser, later: the same account, no second one.
    let again = PageWalker::new();
    let signed_in = via_github(&server, &again).await;
    assert_eq!(location(&signed_in).path(), "/account/sessions");
    assert!(
        account_page(&server, &again)
            .await
            .expect("logged in")
            .contains("octo@example.com")
    );
    let count = gatehouse_entity::users::Entity::find()
        .count(server.gatehouse.db())
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(identities_of(&server, user.id).await, 1);
}

async fn an_unverified_github_address_makes_no_account(backend: Backend) {
    let (server, github) = with_github(backend).await;
    // Anyone can put any address on a new GitHub account; GitHub has not verified it.
    github.sign_in_as(octocat("unsure@example.com", false));
    let walker = PageWalker::new();
    let answered = via_github(&server, &walker).await;
    assert_eq!(answered.status(), StatusCode::CONFLICT);
    let page = answered.text().await.unwrap();
    assert!(
        page.contains("has not verified your email address"),
        "{page}"
    );
    assert!(account_page(&server, &walker).await.is_none());
    assert!(
        user_row(&server, "unsure@example.com").await.is_none(),
        "no account squats the address for its owner to take over later"
    );
    assert!(server.mail.to("unsure@example.com").is_empty());
}

async fn the_state_belongs_to_the_browser_that_started_and_is_used_once(backend: Backend) {
    let (server, github) = with_github(backend).await;
    github.sign_in_as(octocat("octo@example.com", true));
    let victim = PageWalker::new();
    let callback = callback_url(&server, &victim, "github").await;

    // Another browser (an attacker handing their callback to someone, or the reverse)
    // cannot use it: no session holds its state.
    let other = PageWalker::new();
    let refused = other.get(callback.as_str()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(account_page(&server, &other).await.is_none());

    // A state that is not the flow's is refused, and the flow is used up by it.
    let mut forged = callback.clone();
    forged.set_query(Some(&format!(
        "code={}&state=forged",
        callback.query_pairs().find(|(k, _)| k == "code").unwrap().1
    )));
    let refused = victim.get(forged.as_str()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let refused = victim.get(callback.as_str()).await;
    assert_eq!(
        refused.status(),
        StatusCode::BAD_REQUEST,
        "the flow was used"
    );

    // A fresh flow works, once.
    let callback = callback_url(&server, &victim, "github").await;
    let signed_in = victim.get(callback.as_str()).await;
    assert_eq!(location(&signed_in).path(), "/account/sessions");
    let replayed = victim.get(callback.as_str()).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);

    // A flow that waited too long at the provider is refused.
    let callback = callback_url(&server, &victim, "github").await;
    server.advance(Duration::from_secs(11 * 60));
    let late = victim.get(callback.as_str()).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);

    // An unknown provider is a 404.
    let unknown = victim.get(&server.url("/login/nowhere")).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

async fn a_verified_upstream_address_of_an_account_links_only_after_its_password(backend: Backend) {
    let (server, github) = with_github(backend).await;
    let owner = server.verified_user("ada@example.com", PASSWORD).await;
    github.sign_in_as(octocat("ada@example.com", true));

    let walker = PageWalker::new();
    let answered = via_github(&server, &walker).await;
    assert_eq!(
        location(&answered).path(),
        "/login",
        "asked for the password"
    );
    assert!(
        account_page(&server, &walker).await.is_none(),
        "not signed in"
    );
    let user = user_row(&server, "ada@example.com").await.unwrap();
    assert_eq!(identities_of(&server, user.id).await, 0, "not linked yet");
    let login_page = walker
        .get(&server.url("/login"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        login_page.contains("link your GitHub account"),
        "{login_page}"
    );

    // A wrong password links nothing.
    let wrong = walker
        .log_in(&server.base_url, "ada@example.com", "not the password 1")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(identities_of(&server, user.id).await, 0);

    let logged_in = walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;
    assert_eq!(
        location(&logged_in).as_str(),
        server.url("/account/sessions?linked=1")
    );
    assert_eq!(identities_of(&server, user.id).await, 1);
    // The owner hears of every new way in.
    let notice = server
        .mail
        .wait_for("ada@example.com", "GitHub can now sign in")
        .await;
    assert!(notice.text.contains("unlink GitHub"), "{}", notice.text);
    let linked = server.get_as(&owner.access, "/api/v1/me/identities").await;
    assert_eq!(linked.status(), StatusCode::OK);
    let linked: serde_json::Value = linked.json().await.unwrap();
    assert_eq!(linked[0]["provider"], "github", "{linked}");
    assert_eq!(linked[0]["provider_name"], "GitHub", "{linked}");

    // From now on GitHub signs in to the account.
    let later = PageWalker::new();
    let signed_in = via_github(&server, &later).await;
    assert_eq!(location(&signed_in).path(), "/account/sessions");
    assert!(
        account_page(&server, &later)
            .await
            .unwrap()
            .contains("ada@example.com")
    );
}

async fn an_unverified_upstream_address_never_reaches_an_existing_account(backend: Backend) {
    let (server, github) = with_github(backend).await;
    server.verified_user("victim@example.com", PASSWORD).await;
    // The attacker's GitHub account claims the victim's address without verifying it.
    github.sign_in_as(octocat("victim@example.com", false));

    let attacker = PageWalker::new();
    let answered = via_github(&server, &attacker).await;
    assert_eq!(answered.status(), StatusCode::CONFLICT);
    // The same answer as for an address without an account: it tells nothing.
    assert!(
        answered
            .text()
            .await
            .unwrap()
            .contains("has not verified your email address")
    );
    assert!(account_page(&server, &attacker).await.is_none());
    let victim = user_row(&server, "victim@example.com").await.unwrap();
    assert_eq!(identities_of(&server, victim.id).await, 0);

    // Nothing waits in that browser for a password either: the victim logging in there
    // (a shared computer) links nothing.
    let logged_in = attacker
        .log_in(&server.base_url, "victim@example.com", PASSWORD)
        .await;
    assert_eq!(
        location(&logged_in).as_str(),
        server.url("/account/sessions")
    );
    assert_eq!(identities_of(&server, victim.id).await, 0);
}

async fn a_pending_link_is_not_given_to_another_account(backend: Backend) {
    let (server, github) = with_github(backend).await;
    server.verified_user("ada@example.com", PASSWORD).await;
    server.verified_user("bob@example.com", PASSWORD).await;
    github.sign_in_as(octocat("ada@example.com", true));
    let walker = PageWalker::new();
    let answered = via_github(&server, &walker).await;
    assert_eq!(location(&answered).path(), "/login");
    // The browser logs in to another account: the identity stays unlinked.
    let logged_in = walker
        .log_in(&server.base_url, "bob@example.com", PASSWORD)
        .await;
    assert_eq!(
        location(&logged_in).as_str(),
        server.url("/account/sessions")
    );
    for email in ["ada@example.com", "bob@example.com"] {
        let user = user_row(&server, email).await.unwrap();
        assert_eq!(identities_of(&server, user.id).await, 0, "{email}");
    }
}

/// Posts the account page's form at `action` with the page's CSRF token.
async fn account_form(server: &TestServer, walker: &PageWalker, action: &str) -> Response {
    let page = account_page(server, walker).await.expect("logged in");
    walker
        .post(&server.url(action), &[("csrf_token", &csrf_token(&page))])
        .await
}

async fn unlinking_needs_step_up_and_keeps_a_way_to_sign_in(backend: Backend) {
    let (server, github) = with_github(backend).await;
    github.sign_in_as(octocat("octo@example.com", true));
    let walker = PageWalker::new();
    via_github(&server, &walker).await;
    let user = user_row(&server, "octo@example.com").await.unwrap();
    let identity = gatehouse_entity::federated_identities::Entity::find()
        .filter(gatehouse_entity::federated_identities::Column::UserId.eq(user.id))
        .one(server.gatehouse.db())
        .await
        .unwrap()
        .unwrap();
    let unlink = format!("/account/identities/{}/unlink", identity.id);

    // The account has no password: its only way in stays.
    let refused = account_form(&server, &walker, &unlink).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("only way to sign in")
    );
    assert_eq!(identities_of(&server, user.id).await, 1);

    // With a password (set by the reset link), it can go, after a recent login.
    walker
        .post(
            &server.url("/forgot-password"),
            &[
                (
                    "csrf_token",
                    &walker.csrf_of(&server.url("/forgot-password")).await,
                ),
                ("email", "octo@example.com"),
            ],
        )
        .await;
    let mail = server.mail.wait_for("octo@example.com", "Reset your").await;
    let reset_page = walker.get(&mail.link()).await.text().await.unwrap();
    let reset = walker
        .post(
            &server.url("/reset-password"),
            &[
                ("csrf_token", &csrf_token(&reset_page)),
                ("token", &gatehouse_tests::token_of(&mail.link())),
                ("new_password", PASSWORD),
            ],
        )
        .await;
    assert!(reset.status().is_success() || reset.status().is_redirection());
    let walker = PageWalker::new();
    via_github(&server, &walker).await;
    server.advance(Duration::from_secs(16 * 60));
    let stale = account_form(&server, &walker, &unlink).await;
    assert_eq!(stale.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&stale).path(), "/reauthenticate");
    assert_eq!(identities_of(&server, user.id).await, 1);

    // The API says the same to a stale session.
    let tokens = server.log_in("octo@example.com", PASSWORD).await;
    server.advance(Duration::from_secs(16 * 60));
    // A refresh gives a new access token, not a fresh authentication.
    let refreshed = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": tokens.refresh }),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let tokens =
        gatehouse_tests::Tokens::from(refreshed.json::<serde_json::Value>().await.unwrap());
    let api = server
        .delete_as(
            &tokens.access,
            &format!("/api/v1/me/identities/{}", identity.id),
        )
        .await;
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        gatehouse_tests::error_code(api).await,
        "reauthentication_required"
    );

    // Another account cannot unlink it.
    let other = server.verified_user("eve@example.com", PASSWORD).await;
    let api = server
        .delete_as(
            &other.access,
            &format!("/api/v1/me/identities/{}", identity.id),
        )
        .await;
    assert_eq!(api.status(), StatusCode::NOT_FOUND);

    let reauthenticated = server
        .post_as(
            &tokens.access,
            "/api/v1/reauthenticate",
            json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(reauthenticated.status(), StatusCode::NO_CONTENT);
    // A browser signed in through GitHub (perhaps not the owner's) ends with the link;
    // the password session that unlinks stays.
    let through_github = PageWalker::new();
    via_github(&server, &through_github).await;
    assert!(account_page(&server, &through_github).await.is_some());
    let api = server
        .delete_as(
            &tokens.access,
            &format!("/api/v1/me/identities/{}", identity.id),
        )
        .await;
    assert_eq!(api.status(), StatusCode::NO_CONTENT);
    assert_eq!(identities_of(&server, user.id).await, 0);
    assert!(account_page(&server, &through_github).await.is_none());
    let me = server.get_as(&tokens.access, "/api/v1/me").await;
    assert_eq!(me.status(), StatusCode::OK);

    // Unlinked, GitHub no longer signs in to the account: with its verified address it
    // asks for the password again.
    let after = PageWalker::new();
    let answered = via_github(&server, &after).await;
    assert_eq!(location(&answered).path(), "/login");
}

/// Posts `code` on the second step's page.
async fn enter_code(server: &TestServer, walker: &PageWalker, code: &str) -> Response {
    let page = walker
        .get(&server.url("/login/mfa"))
        .await
        .text()
        .await
        .unwrap();
    walker
        .post(
            &server.url("/login/mfa"),
            &[("csrf_token", &csrf_token(&page)), ("code", code)],
        )
        .await
}

async fn a_linked_provider_does_not_skip_the_second_factor(backend: Backend) {
    let (server, github) = with_github(backend).await;
    let enrolled = enrolled_user(&server, "mfa@example.com").await;
    github.sign_in_as(octocat("mfa@example.com", true));

    // Linking: the password, then the code.
    let walker = PageWalker::new();
    via_github(&server, &walker).await;
    let step = walker
        .log_in(&server.base_url, "mfa@example.com", MFA_PASSWORD)
        .await;
    assert_eq!(location(&step).path(), "/login/mfa");
    let linked = enter_code(&server, &walker, &code_now(&server, &enrolled.secret)).await;
    assert_eq!(
        location(&linked).as_str(),
        server.url("/account/sessions?linked=1")
    );

    // GitHub alone is one factor: the code is still asked for.
    server.advance(Duration::from_secs(30));
    let later = PageWalker::new();
    let answered = via_github(&server, &later).await;
    assert_eq!(location(&answered).path(), "/login/mfa");
    assert!(account_page(&server, &later).await.is_none());
    let wrong = enter_code(&server, &later, "000000").await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let done = enter_code(&server, &later, &code_now(&server, &enrolled.secret)).await;
    assert_eq!(location(&done).path(), "/account/sessions");
    let session = gatehouse_entity::sessions::Entity::find()
        .filter(
            gatehouse_entity::sessions::Column::UserId
                .eq(user_row(&server, "mfa@example.com").await.unwrap().id),
        )
        .filter(gatehouse_entity::sessions::Column::Amr.eq("fed otp mfa"))
        .count(server.gatehouse.db())
        .await
        .unwrap();
    assert_eq!(session, 1, "the session says GitHub and the code");
}

async fn another_gatehouse_as_an_openid_connect_provider(backend: Backend) {
    // The upstream provider: another Gatehouse, on `localhost` so that the two servers'
    // cookies stay apart in the one browser.
    let upstream_listener = Listener {
        localhost: true,
        ..Listener::default()
    };
    let upstream = TestServer::start_on(backend.clone(), &[FAST_HASHING], upstream_listener).await;
    let admin = upstream.admin("root@upstream.example").await;
    upstream.verified_user("grace@example.com", PASSWORD).await;

    let listener = Listener::default();
    let callback = listener.url("/login/upstream/callback");
    let (client_id, secret) = upstream
        .register_client(
            &admin,
            json!({
                "name": "Downstream Gatehouse", "type": "confidential",
                "grant_types": ["authorization_code"],
                "redirect_uris": [callback],
            }),
        )
        .await;
    let provider = format!(
        "[[federation.providers]]\nid = \"upstream\"\nkind = \"oidc\"\ndisplay_name = \"Upstream\"\nissuer = \"{}\"\nclient_id = \"{client_id}\"\nclient_secret = \"{}\"\n",
        upstream.config.issuer,
        secret.expect("a confidential client's secret"),
    );
    let server = TestServer::start_on(backend, &[FAST_HASHING, &provider], listener).await;

    let walker = PageWalker::new();
    let start = server.url("/login/upstream");
    let back = walker
        .authorize(&start, &callback, "grace@example.com", PASSWORD)
        .await;
    assert_eq!(
        back.query_pairs()
            .find(|(k, _)| k == "iss")
            .map(|(_, v)| v.into_owned()),
        Some(upstream.config.issuer.clone()),
        "RFC 9207"
    );
    let signed_in = walker.get(back.as_str()).await;
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text().await.unwrap()
    );
    assert_eq!(location(&signed_in).path(), "/account/sessions");
    let page = account_page(&server, &walker).await.expect("logged in");
    assert!(page.contains("grace@example.com"), "{page}");
    let user = user_row(&server, "grace@example.com").await.unwrap();
    assert!(user.email_verified_at.is_some(), "the upstream verified it");

    // The callback again (a replay): refused, the code was used.
    let replayed = walker.get(back.as_str()).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);

    // A callback that says it comes from another issuer (a mix-up attack) is refused.
    let second = PageWalker::new();
    let back = second
        .authorize(&start, &callback, "grace@example.com", PASSWORD)
        .await;
    let mut mixed_up = back.clone();
    let pairs: Vec<(String, String)> = back
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .filter(|(k, _)| k != "iss")
        .collect();
    mixed_up
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("iss", "https://evil.example");
    let refused = second.get(mixed_up.as_str()).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert!(account_page(&server, &second).await.is_none());

    // A returning sign-in, in a third browser, finds the same account.
    let third = PageWalker::new();
    let back = third
        .authorize(&start, &callback, "grace@example.com", PASSWORD)
        .await;
    let signed_in = third.get(back.as_str()).await;
    assert_eq!(location(&signed_in).path(), "/account/sessions");
    assert_eq!(identities_of(&server, user.id).await, 1);
}

/// "Link GitHub" on the account page, through the fake GitHub; the callback's response.
async fn link_github(server: &TestServer, walker: &PageWalker) -> Response {
    let started = account_form(server, walker, "/account/identities/link/github").await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let at_github = walker.get(location(&started).as_str()).await;
    walker.get(location(&at_github).as_str()).await
}

async fn linking_from_the_account_page_needs_step_up_and_a_free_identity(backend: Backend) {
    let (server, github) = with_github(backend).await;
    server.verified_user("ada@example.com", PASSWORD).await;
    // Ada's GitHub account has another address: linking does not go by address.
    github.sign_in_as(octocat("ada.codes@example.net", true));
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;
    let page = account_page(&server, &walker).await.unwrap();
    assert!(page.contains("Link GitHub"), "{page}");

    // A stale login is asked to prove itself first; nothing is linked.
    server.advance(Duration::from_secs(16 * 60));
    let stale = account_form(&server, &walker, "/account/identities/link/github").await;
    assert_eq!(location(&stale).path(), "/reauthenticate");
    let page = walker
        .get(location(&stale).as_str())
        .await
        .text()
        .await
        .unwrap();
    let proved = walker
        .post(
            &server.url("/reauthenticate"),
            &[
                ("csrf_token", &csrf_token(&page)),
                ("next", "/account/sessions"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(location(&proved).path(), "/account/sessions");

    let linked = link_github(&server, &walker).await;
    assert_eq!(
        location(&linked).as_str(),
        server.url("/account/sessions?linked=1")
    );
    let ada = user_row(&server, "ada@example.com").await.unwrap();
    assert_eq!(identities_of(&server, ada.id).await, 1);
    // GitHub now signs in to Ada's account, and made no account of its own address.
    let later = PageWalker::new();
    via_github(&server, &later).await;
    assert!(
        account_page(&server, &later)
            .await
            .unwrap()
            .contains("ada@example.com")
    );
    assert!(user_row(&server, "ada.codes@example.net").await.is_none());

    // Another account cannot link the same GitHub account.
    server.verified_user("eve@example.com", PASSWORD).await;
    let eve = PageWalker::new();
    eve.log_in(&server.base_url, "eve@example.com", PASSWORD)
        .await;
    let refused = link_github(&server, &eve).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let eve_row = user_row(&server, "eve@example.com").await.unwrap();
    assert_eq!(identities_of(&server, eve_row.id).await, 0);
    assert_eq!(identities_of(&server, ada.id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_at_a_provider_count_as_logins_per_ip() {
    let github = FakeGitHub::start();
    let settings = github.provider_settings();
    let limit =
        "[rate_limit.login]\nenabled = true\nper_ip = 3\nper_account = 10\nperiod = \"1m\"\n";
    let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, limit, &settings]).await;
    github.sign_in_as(octocat("octo@example.com", true));
    let walker = PageWalker::new();
    // The start and the callback: two of the three.
    let signed_in = via_github(&server, &walker).await;
    assert_eq!(location(&signed_in).path(), "/account/sessions");
    let started = walker.get(&server.url("/login/github")).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let refused = walker.get(&server.url("/login/github")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
}

async fn guessed_passwords_do_not_lock_a_known_browser_out_of_its_provider(backend: Backend) {
    let lockout = "[lockout]\nslow_down_after = 100\nmax_failures = 3\n";
    let github = FakeGitHub::start();
    let settings = github.provider_settings();
    let server = TestServer::start_with(backend, &[FAST_HASHING, lockout, &settings]).await;
    github.sign_in_as(octocat("octo@example.com", true));
    // The owner's browser signed in with GitHub before: it holds a device cookie.
    let owner = PageWalker::new();
    let signed_in = via_github(&server, &owner).await;
    assert_eq!(location(&signed_in).path(), "/account/sessions");

    // Someone guesses passwords for the address (the account has none) until it locks.
    for _ in 0..3 {
        server
            .post(
                "/api/v1/login",
                json!({ "email": "octo@example.com", "password": "a guessed password" }),
            )
            .await;
    }
    let locked = server
        .post(
            "/api/v1/login",
            json!({ "email": "octo@example.com", "password": "a guessed password" }),
        )
        .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);

    // The owner's browser still signs in with GitHub; a browser new to the account waits
    // for the lock like a password login would.
    let again = via_github(&server, &owner).await;
    assert_eq!(location(&again).path(), "/account/sessions");
    let stranger = PageWalker::new();
    let refused = via_github(&server, &stranger).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_that_fail_a_check_sign_nobody_in() {
    let upstream = FakeOidcProvider::start();
    let settings = upstream.provider_settings();
    let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, &settings]).await;
    let honest = PageWalker::new();
    // The provider as it should be: signed in (so each refusal below is the check's).
    let signed_in = honest
        .get(callback_url(&server, &honest, "fake").await.as_str())
        .await;
    assert_eq!(location(&signed_in).path(), "/account/sessions");

    for spoil in [Spoil::Nonce, Spoil::Audience, Spoil::Expired, Spoil::Issuer] {
        upstream.spoil(spoil);
        let walker = PageWalker::new();
        let callback = callback_url(&server, &walker, "fake").await;
        let refused = walker.get(callback.as_str()).await;
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY, "{spoil:?}");
        assert!(account_page(&server, &walker).await.is_none(), "{spoil:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_published_for_another_algorithm_checks_no_token() {
    let upstream = FakeOidcProvider::start();
    // Before the first sign-in: the key set is fetched once, and kept.
    upstream.spoil(Spoil::KeyAlgorithm);
    let settings = upstream.provider_settings();
    let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, &settings]).await;
    let walker = PageWalker::new();
    let callback = callback_url(&server, &walker, "fake").await;
    let refused = walker.get(callback.as_str()).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert!(account_page(&server, &walker).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_naming_plain_http_keys_is_refused() {
    let upstream = FakeOidcProvider::start();
    upstream.spoil(Spoil::JwksOverHttp);
    let settings = upstream.provider_settings();
    let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, &settings]).await;
    let walker = PageWalker::new();
    // Refused before the browser is sent anywhere.
    let refused = walker.get(&server.url("/login/fake")).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert!(refused.headers().get("location").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_larger_than_the_limit_are_not_read() {
    // Under the limit each padded answer would be fine: the refusals are the limit's.
    let limit = format!(
        "[federation]\nmax_response_bytes = {}\n",
        gatehouse_tests::oidc_provider::PADDING_BYTES / 4
    );
    for spoil in [Spoil::HugeKeys, Spoil::HugeTokenResponse] {
        let upstream = FakeOidcProvider::start();
        upstream.spoil(spoil);
        let settings = upstream.provider_settings();
        let server =
            TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, &settings, &limit]).await;
        let walker = PageWalker::new();
        let callback = callback_url(&server, &walker, "fake").await;
        let refused = walker.get(callback.as_str()).await;
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY, "{spoil:?}");
        assert!(account_page(&server, &walker).await.is_none(), "{spoil:?}");
        // The same provider, well-behaved again, signs in under the same limit.
        upstream.spoil(Spoil::Nothing);
        let walker = PageWalker::new();
        let callback = callback_url(&server, &walker, "fake").await;
        let signed_in = walker.get(callback.as_str()).await;
        assert_eq!(
            location(&signed_in).path(),
            "/account/sessions",
            "{spoil:?}"
        );
    }
}

async fn an_account_without_a_password_proves_itself_at_its_provider(backend: Backend) {
    let (server, github) = with_github(backend).await;
    github.sign_in_as(octocat("nopass@example.com", true));
    let walker = PageWalker::new();
    let signed_in = via_github(&server, &walker).await;
    assert_eq!(location(&signed_in).path(), "/account/sessions");
    server.advance(std::time::Duration::from_secs(16 * 60));

    // A stale login is asked for what the account has: a provider, not a password.
    let stale = walker.get(&server.url("/account/delete")).await;
    let ask = location(&stale);
    assert_eq!(ask.path(), "/reauthenticate");
    let page = walker.get(ask.as_str()).await.text().await.unwrap();
    assert!(
        page.contains(r#"href="/login/github">Sign in again with GitHub"#),
        "{page}"
    );
    assert!(
        !page.contains(r#"name="password""#),
        "no password field: {page}"
    );
    // A password posted anyway is refused as such, and counts as no failed login.
    let csrf = csrf_token(&account_page(&server, &walker).await.expect("logged in"));
    for _ in 0..3 {
        let refused = walker
            .post(
                &server.url("/reauthenticate"),
                &[("csrf_token", &csrf), ("password", "a guess a guess")],
            )
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.text().await.unwrap().contains("no password"));
    }
    let failures = gatehouse_entity::login_failures::Entity::find()
        .count(server.gatehouse.db())
        .await
        .unwrap();
    assert_eq!(failures, 0);

    // Signing in there again is a fresh login.
    let again = via_github(&server, &walker).await;
    assert_eq!(location(&again).path(), "/account/sessions");
    let fresh = walker.get(&server.url("/account/delete")).await;
    assert_eq!(fresh.status(), StatusCode::OK);
}
