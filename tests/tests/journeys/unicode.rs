//! Unicode in addresses and names: an internationalised domain is one account whatever
//! form it is typed in (stored as punycode, the form mail servers route); a non-ASCII
//! local part, a malformed punycode label, and names with text-direction or invisible
//! characters are refused with their stable codes; names are stored in NFC.

use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases, token_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    an_idn_domain_is_one_account_in_every_form,
    addresses_unicode_cannot_route_are_refused,
    names_are_stored_in_nfc,
    client_names_cannot_hide_or_reorder_text,
);

const PASSWORD: &str = "unicode password 1";

async fn an_idn_domain_is_one_account_in_every_form(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server
        .post(
            "/api/v1/signup",
            json!({ "email": "Ann@B\u{dc}cher.Example", "password": PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // The mail goes to the punycode form: what every SMTP server can route.
    let mail = server
        .mail
        .wait_for("ann@xn--bcher-kva.example", "Confirm your email")
        .await;
    let verified = server
        .post(
            "/api/v1/email/verify",
            json!({ "token": token_of(&mail.link()) }),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);

    for typed in [
        "ann@b\u{fc}cher.example",
        "ANN@B\u{dc}CHER.EXAMPLE",
        "ann@xn--bcher-kva.example",
        "Ann@XN--BCHER-KVA.example",
        // Decomposed: u + combining diaeresis maps to the same label.
        "ann@bu\u{308}cher.example",
    ] {
        let login = server
            .post(
                "/api/v1/login",
                json!({ "email": typed, "password": PASSWORD }),
            )
            .await;
        assert_eq!(login.status(), StatusCode::OK, "{typed:?}");
        let tokens: Value = login.json().await.unwrap();
        let me: Value = server
            .get_as(tokens["access_token"].as_str().unwrap(), "/api/v1/me")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["email"], "ann@xn--bcher-kva.example", "{typed:?}");
    }

    // Signing up again in the other form is the same address: no second account (the
    // answer does not say so, but no new verification mail goes out for a new account).
    let again = server
        .post(
            "/api/v1/signup",
            json!({ "email": "ann@xn--bcher-kva.example", "password": "another password 1" }),
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let old_password = server
        .post(
            "/api/v1/login",
            json!({ "email": "ann@b\u{fc}cher.example", "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        old_password.status(),
        StatusCode::OK,
        "the account was not replaced"
    );
}

async fn addresses_unicode_cannot_route_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    for email in [
        // A non-ASCII local part needs SMTPUTF8 all the way, and lets look-alike
        // letters make look-alike accounts.
        "j\u{f6}rg@example.com",
        "\u{430}nn@example.com",
        // KELVIN SIGN lower-cases to an ASCII `k`: still refused, not folded.
        "\u{212a}im@example.com",
        // Punycode that does not decode, or is not the canonical encoding.
        "ann@xn--zz-.example",
        "ann@xn--a.example",
        // Characters IDNA forbids in a host name.
        "ann@b\u{fc}cher\u{ff0f}x.example",
        "ann@exa\u{202e}mple.com",
    ] {
        let response = server
            .post(
                "/api/v1/signup",
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{email:?}");
        assert_eq!(error_code(response).await, "invalid_email", "{email:?}");
    }
    assert!(
        server.mail.all().is_empty(),
        "no mail for a refused address"
    );
}

async fn names_are_stored_in_nfc(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let response = server
        .post(
            "/api/v1/signup",
            json!({ "email": "jose@example.com", "password": PASSWORD, "name": "  Jose\u{301} Garci\u{301}a " }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let users: Value = server
        .get_as(&admin.access, "/api/v1/admin/users")
        .await
        .json()
        .await
        .unwrap();
    let list = users
        .as_array()
        .or_else(|| users["users"].as_array())
        .or_else(|| users["items"].as_array())
        .unwrap_or_else(|| panic!("a list of users: {users}"));
    let jose = list
        .iter()
        .find(|u| u["email"] == "jose@example.com")
        .expect("the new user is listed");
    assert_eq!(
        jose["name"], "Jos\u{e9} Garc\u{ed}a",
        "trimmed and composed (NFC)"
    );
}

async fn client_names_cannot_hide_or_reorder_text(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let client = |name: &str| json!({ "name": name, "type": "confidential", "grant_types": ["client_credentials"], "scopes": [] });
    for name in [
        // Shows as "Bankexe.png" on the consent page.
        "Bank\u{202e}gnp.exe",
        "\u{2067}Shop\u{2069}",
        "Sh\u{200b}op",
        "Shop\nSecond line",
        "Shop\u{200f}",
    ] {
        let response = server
            .post_as(&admin.access, "/api/v1/admin/clients", client(name))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(
            error_code(response).await,
            "invalid_client_metadata",
            "{name:?}"
        );
    }
    let created = server
        .post_as(
            &admin.access,
            "/api/v1/admin/clients",
            client("Cafe\u{301}"),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["name"], "Caf\u{e9}", "stored in NFC");
    let id = body["client_id"].as_str().unwrap();

    // A rename is held to the same rule.
    let renamed = server
        .patch_as(
            &admin.access,
            &format!("/api/v1/admin/clients/{id}"),
            json!({ "name": "Caf\u{e9}\u{202e}" }),
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(renamed).await, "invalid_client_metadata");
}
