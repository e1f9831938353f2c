//! Property tests of the request parsing of the OAuth endpoints: whatever urlencoded body,
//! query string or `Authorization` header arrives, parsing never panics and every refusal
//! is a 4xx (a client's mistake), never a 5xx.

use actix_web::ResponseError;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::test::TestRequest;
use actix_web::web;
use gatehouse_core::{AuditQuery, UserQuery};
use gatehouse_server::extract::{OAuthForm, client_credentials};
use proptest::prelude::*;

/// The parameters the OAuth endpoints read.
const PARAMETERS: [&str; 10] = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "token",
    "token_type_hint",
    "client_id",
    "client_secret",
];

/// Urlencoded text: mostly the known parameters, with `&`, `=`, `%` and `+` in odd places.
fn urlencoded() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        prop::sample::select(PARAMETERS.to_vec()).prop_map(str::to_owned),
        Just("=".to_owned()),
        Just("&".to_owned()),
        Just("%".to_owned()),
        Just("%zz".to_owned()),
        Just("%C3%28".to_owned()),
        Just("+".to_owned()),
        ".{0,6}",
    ];
    prop::collection::vec(part, 0..16).prop_map(|parts| parts.concat())
}

fn check_form(form: &OAuthForm) -> Result<(), TestCaseError> {
    for name in PARAMETERS {
        match form.get(name) {
            Ok(value) => prop_assert!(value.is_none_or(|v| !v.is_empty())),
            Err(e) => prop_assert!(e.status_code().is_client_error(), "{e}"),
        }
        if let Err(e) = form.require(name) {
            prop_assert!(e.status_code().is_client_error(), "{e}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_urlencoded_body_parses_or_is_refused_as_the_clients_mistake(body in urlencoded()) {
        // What `web::Form<Vec<(String, String)>>` does with the body.
        if let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(&body) {
            check_form(&OAuthForm(pairs))?;
        }
    }

    #[test]
    fn arbitrary_bytes_as_a_body_never_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
            check_form(&OAuthForm(pairs))?;
        }
    }

    #[test]
    fn a_repeated_parameter_is_invalid_request(name in prop::sample::select(PARAMETERS.to_vec()), a in "[a-z]{1,5}", b in "[a-z]{1,5}") {
        let form = OAuthForm(vec![(name.to_owned(), a), (name.to_owned(), b)]);
        let error = form.get(name).unwrap_err();
        prop_assert_eq!(error.code(), "invalid_request");
        prop_assert_eq!(error.status_code().as_u16(), 400);
    }

    #[test]
    fn any_authorization_header_and_form_give_credentials_or_a_4xx(
        scheme in prop::sample::select(vec!["Basic", "basic", "Bearer", "", "Basic  "]),
        credentials in prop_oneof![
            ".{0,40}",
            (".{0,10}", ".{0,10}").prop_map(|(id, secret)| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
            }),
        ],
        body in urlencoded(),
    ) {
        let mut request = TestRequest::default();
        if let Ok(value) = HeaderValue::from_str(&format!("{scheme} {credentials}")) {
            request = request.insert_header((AUTHORIZATION, value));
        }
        let request = request.to_http_request();
        let form = serde_urlencoded::from_str::<Vec<(String, String)>>(&body)
            .map(OAuthForm)
            .unwrap_or_else(|_| OAuthForm(Vec::new()));
        for form in [Some(&form), None] {
            if let Err(e) = client_credentials(&request, form) {
                prop_assert!(e.status_code().is_client_error(), "{e}");
            }
        }
    }

    #[test]
    fn any_query_string_of_the_admin_lists_parses_or_is_refused(query in urlencoded(), extra in prop::sample::select(vec!["email", "limit", "cursor", "user_id", "event", "after"])) {
        let query = format!("{query}&{extra}={query}");
        // Refusals become 400 `invalid_request` in the app's QueryConfig.
        let _ = web::Query::<UserQuery>::from_query(&query);
        let _ = web::Query::<AuditQuery>::from_query(&query);
    }
}
