//! Property tests of the parsing that faces the world: whatever bytes arrive as a token,
//! the verifier answers with an error and never panics; a token altered in any byte is
//! refused; headers and claims of any shape are refused unless they are exactly right.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{KEYS, verifier};
use crate::test_keys::{raw_token, user_claims};

const SID: &str = "0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f";

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A name a header or claim may carry, known ones often.
fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "alg",
            "kid",
            "typ",
            "crit",
            "jku",
            "x5u",
            "iss",
            "sub",
            "aud",
            "exp",
            "nbf",
            "iat",
            "sid",
            "scope",
            "client_id",
            "jti",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_refused_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(verifier().verify_cached(&text).is_err());
    }

    #[test]
    fn three_arbitrary_segments_are_refused(
        header in prop::collection::vec(any::<u8>(), 0..200),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        signature in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        );
        prop_assert!(verifier().verify_cached(&token).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_token_altered_in_any_byte_is_refused(
        key in 0usize..3,
        position in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let key = KEYS.all()[key];
        let token = key.sign(&user_claims(SID));
        prop_assert!(verifier().verify_cached(&token).is_ok());
        let mut bytes = token.into_bytes();
        let at = position.index(bytes.len());
        prop_assume!(bytes[at] != replacement);
        bytes[at] = replacement;
        let altered = String::from_utf8_lossy(&bytes);
        prop_assert!(verifier().verify_cached(&altered).is_err(), "accepted: {altered}");
    }

    #[test]
    fn a_header_of_any_shape_is_refused_unless_exactly_right(
        key in 0usize..3,
        changes in prop::collection::btree_map(claim_name(), any_json(), 1..4),
    ) {
        let key = KEYS.all()[key];
        let token = key.sign(&user_claims(SID));
        let parts: Vec<&str> = token.split('.').collect();
        let mut header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let original = header.clone();
        for (name, value) in changes {
            header[name] = value;
        }
        prop_assume!(header != original);
        // The signature covers the header as sent: any change breaks it, or the header
        // no longer parses. Either way the token is refused.
        let forged = raw_token(&header, &payload, &signature);
        prop_assert!(verifier().verify_cached(&forged).is_err());
    }

    #[test]
    fn signed_claims_of_any_shape_never_panic_and_bad_ones_are_refused(
        key in 0usize..3,
        changes in prop::collection::btree_map(claim_name(), any_json(), 1..5),
    ) {
        let key = KEYS.all()[key];
        let mut claims = user_claims(SID);
        let original = claims.clone();
        for (name, value) in &changes {
            claims[name] = value.clone();
        }
        let token = key.sign(&claims);
        let verdict = verifier().verify_cached(&token);
        // The registered claims decide: another issuer, or an expiry that is no number,
        // is refused.
        if claims["iss"] != original["iss"] || !claims["exp"].is_number() {
            prop_assert!(verdict.is_err(), "accepted: {claims}");
        }
        if let Ok(verified) = verdict {
            prop_assert_eq!(verified.sub.as_str(), claims["sub"].as_str().unwrap_or_default());
        }
    }
}
