//! Local verification: what is accepted and, above all, what is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{KEYS, builder, verifier};
use crate::test_keys::{AUDIENCE, ISSUER, jwks, now, raw_token, user_claims};
use crate::{Claims, Introspection, JwkSet, VerifyError};

const SID: &str = "0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f";

fn with(mut claims: Value, changes: &Value) -> Value {
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// Splits a token into its decoded header, decoded payload and raw signature.
fn split(token: &str) -> (Value, Value, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).unwrap();
    (
        serde_json::from_slice(&decode(parts[0])).unwrap(),
        serde_json::from_slice(&decode(parts[1])).unwrap(),
        decode(parts[2]),
    )
}

#[tokio::test]
async fn a_valid_token_passes_for_each_algorithm() {
    let verifier = verifier();
    for key in KEYS.all() {
        let token = key.sign(&user_claims(SID));
        let claims = verifier.verify_cached(&token).unwrap();
        assert_eq!(claims.iss, ISSUER, "{:?}", key.alg);
        assert_eq!(claims.aud, [AUDIENCE]);
        assert_eq!(claims.sid.as_deref(), Some(SID));
        assert_eq!(claims.client_id, "notes-web");
        assert_eq!(claims.role.as_deref(), Some("user"));
        assert!(claims.has_scope("notes:read"));
        assert!(!claims.has_scope("notes"));
        assert_eq!(claims.extra["tenant"], "acme");
        assert_eq!(verifier.verify(&token).await.unwrap(), claims);
    }
}

#[test]
fn a_service_token_without_sid_passes() {
    let token = KEYS.eddsa.sign(&with(
        user_claims(SID),
        &json!({"sid": null, "role": null, "scope": null}),
    ));
    let claims = verifier().verify_cached(&token).unwrap();
    assert!(!claims.is_user_token());
    assert!(!claims.has_scope("notes:read"));
}

#[test]
fn tampering_with_header_payload_or_signature_is_refused() {
    let verifier = verifier();
    for key in KEYS.all() {
        let token = key.sign(&user_claims(SID));
        let (header, payload, signature) = split(&token);

        let header_changed = with(header.clone(), &json!({"x-extra": "1"}));
        let forged = raw_token(&header_changed, &payload, &signature);
        assert_eq!(
            verifier.verify_cached(&forged),
            Err(VerifyError::InvalidSignature),
            "{:?} header",
            key.alg
        );

        let payload_changed = with(payload.clone(), &json!({"sub": "someone-else"}));
        let forged = raw_token(&header, &payload_changed, &signature);
        assert_eq!(
            verifier.verify_cached(&forged),
            Err(VerifyError::InvalidSignature),
            "{:?} payload",
            key.alg
        );

        let mut flipped = signature.clone();
        flipped[10] ^= 0x01;
        let forged = raw_token(&header, &payload, &flipped);
        assert_eq!(
            verifier.verify_cached(&forged),
            Err(VerifyError::InvalidSignature),
            "{:?} signature",
            key.alg
        );

        let forged = raw_token(&header, &payload, &signature[..signature.len() - 1]);
        assert_eq!(
            verifier.verify_cached(&forged),
            Err(VerifyError::InvalidSignature),
            "{:?} short signature",
            key.alg
        );
    }
}

#[test]
fn alg_none_is_refused() {
    let verifier = verifier();
    let payload = user_claims(SID);
    for alg in ["none", "None", "NONE", ""] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": KEYS.rs256.kid});
        let token = raw_token(&header, &payload, b"");
        assert_eq!(
            verifier.verify_cached(&token),
            Err(VerifyError::AlgorithmNotAllowed),
            "{alg}"
        );
    }
    // The same without a signature part at all.
    let header = json!({"alg": "none", "typ": "at+jwt", "kid": KEYS.rs256.kid});
    let token = raw_token(&header, &payload, b"");
    let unsigned = token.trim_end_matches('.');
    assert_eq!(
        verifier.verify_cached(unsigned),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn an_hmac_token_keyed_with_the_public_key_is_refused() {
    let verifier = verifier();
    let rsa = &KEYS.rs256;
    let jwk = serde_json::to_value(&rsa.jwk).unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&rsa.public_der)
    );
    let secrets: [Vec<u8>; 4] = [
        rsa.public_der.clone(),
        pem.into_bytes(),
        jwk.to_string().into_bytes(),
        URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(),
    ];
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for secret in &secrets {
            let mut header = Header::new(alg);
            header.typ = Some("at+jwt".into());
            header.kid = Some(rsa.kid.clone());
            let token = jsonwebtoken::encode(
                &header,
                &user_claims(SID),
                &EncodingKey::from_secret(secret),
            )
            .unwrap();
            assert_eq!(
                verifier.verify_cached(&token),
                Err(VerifyError::AlgorithmNotAllowed)
            );
        }
    }
}

#[test]
fn hmac_can_never_be_allowed() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let built = builder()
            .algorithms([Algorithm::RS256, alg])
            .build_with_jwks(jwks(&KEYS.all()));
        assert!(matches!(built, Err(VerifyError::Config(_))), "{alg:?}");
    }
    assert!(matches!(
        builder().algorithms([]).build_with_jwks(jwks(&[])),
        Err(VerifyError::Config(_))
    ));
}

#[test]
fn an_oct_key_in_the_set_is_never_trusted() {
    let set: JwkSet = serde_json::from_value(json!({"keys": [
        {"kty": "oct", "kid": "shared", "alg": "HS256", "k": "c2VjcmV0"}
    ]}))
    .unwrap();
    let verifier = builder().build_with_jwks(set).unwrap();
    assert!(verifier.key_ids().is_empty());
}

#[test]
fn the_key_decides_the_algorithm_not_the_token() {
    let verifier = verifier();
    // Signed by the EC key, but naming the RSA key's kid: the RSA key only does RS256.
    let mut header = KEYS.es256.header();
    header.kid = Some(KEYS.rs256.kid.clone());
    let token = KEYS.es256.sign_with(&header, &user_claims(SID));
    assert_eq!(
        verifier.verify_cached(&token),
        Err(VerifyError::AlgorithmNotAllowed)
    );

    // An RSA key published for RS256 is not accepted for PS256 either.
    let lenient = builder()
        .algorithms([Algorithm::RS256, Algorithm::PS256])
        .build_with_jwks(jwks(&KEYS.all()))
        .unwrap();
    let mut header = KEYS.rs256.header();
    header.alg = Algorithm::PS256;
    let token = KEYS.rs256.sign_with(&header, &user_claims(SID));
    assert_eq!(
        lenient.verify_cached(&token),
        Err(VerifyError::AlgorithmNotAllowed)
    );
}

#[test]
fn a_key_without_alg_gets_the_one_its_type_implies() {
    let mut set = jwks(&KEYS.all());
    for jwk in &mut set.keys {
        jwk.common.key_algorithm = None;
    }
    let verifier = builder().build_with_jwks(set).unwrap();
    for key in KEYS.all() {
        assert!(
            verifier.verify_cached(&key.sign(&user_claims(SID))).is_ok(),
            "{:?}",
            key.alg
        );
    }
}

#[test]
fn an_algorithm_outside_the_allow_list_is_refused() {
    let verifier = builder()
        .algorithms([Algorithm::EdDSA])
        .build_with_jwks(jwks(&KEYS.all()))
        .unwrap();
    assert_eq!(verifier.key_ids(), std::slice::from_ref(&KEYS.eddsa.kid));
    assert!(
        verifier
            .verify_cached(&KEYS.eddsa.sign(&user_claims(SID)))
            .is_ok()
    );
    for key in [&KEYS.rs256, &KEYS.es256] {
        assert_eq!(
            verifier.verify_cached(&key.sign(&user_claims(SID))),
            Err(VerifyError::AlgorithmNotAllowed)
        );
    }
}

#[test]
fn the_token_type_is_checked() {
    let verifier = verifier();
    let key = &KEYS.es256;
    let signed = |typ: Option<&str>| {
        let mut header = key.header();
        header.typ = typ.map(str::to_owned);
        key.sign_with(&header, &user_claims(SID))
    };
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        assert!(verifier.verify_cached(&signed(Some(typ))).is_ok(), "{typ}");
    }
    for typ in [
        Some("JWT"),
        Some("id_token+jwt"),
        Some("application/jwt"),
        Some("xat+jwt"),
        None,
    ] {
        assert_eq!(
            verifier.verify_cached(&signed(typ)),
            Err(VerifyError::WrongType),
            "{typ:?}"
        );
    }
    let any_type = builder()
        .required_type(None)
        .build_with_jwks(jwks(&KEYS.all()))
        .unwrap();
    assert!(any_type.verify_cached(&signed(Some("JWT"))).is_ok());
    assert!(any_type.verify_cached(&signed(None)).is_ok());
}

#[test]
fn issuer_and_audience_are_checked() {
    let verifier = verifier();
    let key = &KEYS.rs256;
    let token = key.sign(&with(
        user_claims(SID),
        &json!({"iss": "https://evil.example.test"}),
    ));
    assert_eq!(
        verifier.verify_cached(&token),
        Err(VerifyError::WrongIssuer)
    );
    let token = key.sign(&with(
        user_claims(SID),
        &json!({"iss": format!("{ISSUER}/")}),
    ));
    assert_eq!(
        verifier.verify_cached(&token),
        Err(VerifyError::WrongIssuer)
    );

    let token = key.sign(&with(user_claims(SID), &json!({"aud": "billing-api"})));
    assert_eq!(
        verifier.verify_cached(&token),
        Err(VerifyError::WrongAudience)
    );
    let token = key.sign(&with(user_claims(SID), &json!({"aud": []})));
    assert_eq!(
        verifier.verify_cached(&token),
        Err(VerifyError::WrongAudience)
    );
    let token = key.sign(&with(
        user_claims(SID),
        &json!({"aud": ["billing-api", AUDIENCE]}),
    ));
    assert_eq!(
        verifier.verify_cached(&token).unwrap().aud,
        ["billing-api", AUDIENCE]
    );

    let both = builder()
        .audience("billing-api")
        .build_with_jwks(jwks(&KEYS.all()))
        .unwrap();
    let token = key.sign(&with(user_claims(SID), &json!({"aud": "billing-api"})));
    assert!(both.verify_cached(&token).is_ok());
    assert!(matches!(
        crate::Verifier::builder(ISSUER).build_with_jwks(jwks(&KEYS.all())),
        Err(VerifyError::Config(_))
    ));
}

#[test]
fn lifetime_is_checked_with_leeway() {
    let verifier = verifier(); // default leeway: 30 s
    let key = &KEYS.eddsa;
    let now = now();
    let token = key.sign(&with(
        user_claims(SID),
        &json!({"exp": now - 60, "iat": now - 960, "nbf": now - 960}),
    ));
    assert_eq!(verifier.verify_cached(&token), Err(VerifyError::Expired));
    let token = key.sign(&with(user_claims(SID), &json!({"exp": now - 10})));
    assert!(verifier.verify_cached(&token).is_ok(), "within the leeway");

    let token = key.sign(&with(user_claims(SID), &json!({"nbf": now + 120})));
    assert_eq!(
        verifier.verify_cached(&token),
        Err(VerifyError::NotYetValid)
    );
    let token = key.sign(&with(user_claims(SID), &json!({"nbf": now + 10})));
    assert!(verifier.verify_cached(&token).is_ok(), "within the leeway");

    let strict = builder()
        .leeway(std::time::Duration::ZERO)
        .build_with_jwks(jwks(&KEYS.all()))
        .unwrap();
    let token = key.sign(&with(user_claims(SID), &json!({"exp": now - 1})));
    assert_eq!(strict.verify_cached(&token), Err(VerifyError::Expired));
    let token = key.sign(&with(user_claims(SID), &json!({"nbf": now + 5})));
    assert_eq!(strict.verify_cached(&token), Err(VerifyError::NotYetValid));
}

#[test]
fn a_revoked_session_is_refused_until_its_tokens_expire() {
    let verifier = verifier();
    let key = &KEYS.rs256;
    let now = now();
    let token = key.sign(&user_claims(SID));
    let other = key.sign(&user_claims("0190f1c2-7e4b-7c3a-9a51-000000000000"));
    let service = key.sign(&with(user_claims(SID), &json!({"sid": null})));

    verifier.revoke_session_locally(SID, now + 900);
    assert_eq!(verifier.verify_cached(&token), Err(VerifyError::Revoked));
    assert!(
        verifier.verify_cached(&other).is_ok(),
        "other sessions are untouched"
    );
    assert!(
        verifier.verify_cached(&service).is_ok(),
        "tokens without sid are untouched"
    );
    assert!(
        verifier.is_session_revoked(&SID.to_ascii_uppercase()),
        "UUIDs compare case-insensitively"
    );

    // An entry whose tokens expired (leeway included) no longer matters and is dropped.
    let lapsed = super::verifier();
    lapsed.revoke_session_locally(SID, now - 31);
    assert!(lapsed.verify_cached(&token).is_ok());
    assert_eq!(lapsed.revoked_session_count(), 0);
    // Inside the leeway the entry still holds: an expired token is accepted that long too.
    lapsed.revoke_session_locally(SID, now - 5);
    assert_eq!(lapsed.verify_cached(&token), Err(VerifyError::Revoked));

    // A later revocation of the same session extends, an earlier one does not shorten.
    let strict = builder()
        .leeway(std::time::Duration::ZERO)
        .build_with_jwks(jwks(&KEYS.all()))
        .unwrap();
    strict.revoke_session_locally(SID, now + 900);
    strict.revoke_session_locally(SID, now - 1);
    assert_eq!(strict.verify_cached(&token), Err(VerifyError::Revoked));
    assert_eq!(strict.revoked_session_count(), 1);
}

#[tokio::test]
async fn an_unknown_kid_is_refused_without_network_on_a_static_set() {
    let verifier = builder().build_with_jwks(jwks(&[&KEYS.rs256])).unwrap();
    let token = KEYS.eddsa.sign(&user_claims(SID));
    assert_eq!(verifier.verify_cached(&token), Err(VerifyError::UnknownKey));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKey));
    assert!(matches!(
        verifier.refresh_keys().await,
        Err(VerifyError::Config(_))
    ));
}

#[test]
fn malformed_tokens_are_refused() {
    let verifier = verifier();
    let key = &KEYS.es256;
    let good = key.sign(&user_claims(SID));
    let (header, payload, signature) = split(&good);
    let huge = format!("{good}{}", "A".repeat(20_000));
    let cases: Vec<String> = vec![
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{good}.extra"),
        "!!!.???.***".into(),
        format!("e30.{}", good.split_once('.').unwrap().1),
        raw_token(&json!("not an object"), &payload, &signature),
        raw_token(
            &with(header.clone(), &json!({"kid": null})),
            &payload,
            &signature,
        ),
        raw_token(
            &with(header.clone(), &json!({"crit": ["exp"], "exp": 1})),
            &payload,
            &signature,
        ),
        huge,
    ];
    for token in &cases {
        assert_eq!(
            verifier.verify_cached(token),
            Err(VerifyError::Malformed),
            "{token:.60}"
        );
    }
    // Signed correctly, but a required claim is missing or of the wrong type.
    for changes in [
        json!({"jti": null}),
        json!({"exp": "tomorrow"}),
        json!({"sub": 42}),
    ] {
        let token = key.sign(&with(user_claims(SID), &changes));
        assert_eq!(
            verifier.verify_cached(&token),
            Err(VerifyError::Malformed),
            "{changes}"
        );
    }
}

#[test]
fn claims_read_aud_as_string_or_array_and_keep_extra_claims() {
    let claims: Claims =
        serde_json::from_value(with(user_claims(SID), &json!({"aud": ["a", "b"]}))).unwrap();
    assert_eq!(claims.aud, ["a", "b"]);
    assert_eq!(claims.extra.len(), 1, "only `tenant` is extra");
    let round_trip: Claims =
        serde_json::from_value(serde_json::to_value(&claims).unwrap()).unwrap();
    assert_eq!(round_trip, claims);
    assert_eq!(
        serde_json::to_value(
            verifier()
                .verify_cached(&KEYS.rs256.sign(&user_claims(SID)))
                .unwrap()
        )
        .unwrap()["aud"],
        AUDIENCE
    );
}

#[test]
fn an_active_introspection_becomes_claims() {
    let answer: Introspection = serde_json::from_value(with(
        user_claims(SID),
        &json!({"active": true, "nbf": null, "token_type": "Bearer"}),
    ))
    .unwrap();
    let claims = answer.clone().into_claims().unwrap();
    assert_eq!(claims.nbf, claims.iat);
    assert_eq!(claims.extra["token_type"], "Bearer");
    let incomplete = Introspection {
        jti: None,
        ..answer
    };
    assert_eq!(incomplete.into_claims(), Err(VerifyError::Malformed));
}

#[test]
fn debug_output_hides_the_client_secret() {
    let builder = builder().introspection("notes-api", "very-secret-value");
    assert!(!format!("{builder:?}").contains("very-secret-value"));
    let verifier = builder.build_with_jwks(jwks(&KEYS.all())).unwrap();
    let shown = format!("{verifier:?}");
    assert!(shown.contains(ISSUER) && !shown.contains("very-secret-value"));
}
