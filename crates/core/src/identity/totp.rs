//! Authenticator-app codes (TOTP, RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one
//! step of clock drift either way) and single-use recovery codes.
//!
//! A TOTP secret is 160 random bits, stored sealed (AES-256-GCM under a key derived from
//! the master key, bound to the account id), so a copy of the database alone yields no
//! codes. A code is accepted once: the credential keeps the last time step it accepted
//! and a later check must match a later step, written with a conditional update so that
//! two requests racing with the same code cannot both pass.
//!
//! Recovery codes are 80 random bits each (16 base32 characters, shown in groups of four);
//! only a keyed hash of each is stored, and using one marks it used, once.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

use crate::platform::secrets::{KeyedHashes, SealingKey, fill_random};
use crate::{Error, Result};

/// Seconds per time step.
const STEP_SECONDS: u64 = 30;
/// Digits of a code.
const DIGITS: u8 = 6;
/// Bytes of a new secret (RFC 4226 recommends 160 bits).
const SECRET_BYTES: usize = 20;
/// How many recovery codes a set holds.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Random bytes per recovery code (80 bits: 16 base32 characters).
const RECOVERY_CODE_BYTES: usize = 10;
/// The base32 alphabet of recovery codes (RFC 4648, without padding).
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new enrolment's secret, as the user's authenticator app is given it.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an app.
    pub secret: SecretString,
    /// The `otpauth://totp/...` URI the QR code holds.
    pub otpauth_uri: SecretString,
    /// The QR code of the URI, as an SVG document.
    pub qr_svg: String,
    /// The secret sealed for storage.
    pub(crate) sealed: Vec<u8>,
}

/// What a presented second factor was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A code from the authenticator app.
    Totp,
    /// One of the recovery codes.
    RecoveryCode,
}

impl SecondFactor {
    /// The `method` recorded in the audit log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SecondFactor::Totp => "totp",
            SecondFactor::RecoveryCode => "recovery_code",
        }
    }
}

/// How a login proved who the user is before any second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstFactor {
    /// The account's password (`pwd`).
    Password,
    /// A sign-in at an upstream provider (`fed`: RFC 8176 has no value for it).
    Federated,
}

impl FirstFactor {
    /// The first factor of a session's `amr` (none: a password, as before `amr` was
    /// stored).
    pub(crate) fn of_amr(amr: Option<&str>) -> Self {
        match amr.and_then(|amr| amr.split(' ').next()) {
            Some("fed") => FirstFactor::Federated,
            _ => FirstFactor::Password,
        }
    }
}

/// The `amr` values of a login, space-separated: the first factor (`pwd`, or `fed` for
/// an upstream provider), and the second if one was presented (RFC 8176: `otp` for an
/// authenticator code; `mfa` for either).
pub(crate) fn amr_of(first: FirstFactor, second_factor: Option<SecondFactor>) -> String {
    let first = match first {
        FirstFactor::Password => "pwd",
        FirstFactor::Federated => "fed",
    };
    match second_factor {
        None => first.to_owned(),
        Some(SecondFactor::Totp) => format!("{first} otp mfa"),
        Some(SecondFactor::RecoveryCode) => format!("{first} mfa"),
    }
}

fn context(user_id: Uuid) -> Vec<u8> {
    format!("totp:{}", user_id.simple()).into_bytes()
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(Secret::from(secret))
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(account.replace(':', " "))
        .build()
        .map_err(|e| Error::internal(format!("a TOTP credential could not be built: {e}")))
}

/// A new secret for `user_id`, labelled `issuer` and `account` (the address) in the app.
pub(crate) fn new_enrolment(
    key: &SealingKey,
    user_id: Uuid,
    issuer: &str,
    account: &str,
) -> Result<TotpEnrolment> {
    let mut secret = vec![0u8; SECRET_BYTES];
    fill_random(&mut secret)?;
    let sealed = key.seal(&secret, &context(user_id))?;
    let totp = totp(secret, issuer, account)?;
    let uri = totp
        .to_url()
        .map_err(|e| Error::internal(format!("an otpauth URI could not be built: {e}")))?;
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| Error::internal(format!("a QR code could not be drawn: {e}")))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(TotpEnrolment {
        secret: SecretString::from(totp.secret().to_base32()),
        otpauth_uri: SecretString::from(uri),
        qr_svg,
        sealed,
    })
}

/// The time step of `code` for the sealed secret of `user_id` at `now`, if the code is
/// right for the current step or one step either side. The caller still has to refuse a
/// step at or before the last one accepted.
pub(crate) fn matching_step(
    key: &SealingKey,
    user_id: Uuid,
    sealed: &[u8],
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    let secret = key
        .open(sealed, &context(user_id))
        .map_err(|_| Error::internal("a TOTP secret does not decrypt under the master key"))?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = totp(secret, "gatehouse", "check")?;
    let now = u64::try_from(now.timestamp()).unwrap_or(0);
    Ok(totp
        .check(&code, now)
        .and_then(|step| i64::try_from(step).ok()))
}

/// The code of `secret_base32` at `at`, as an authenticator app shows it (for tests and
/// the command line's own checks).
pub fn code_at(secret_base32: &str, at: DateTime<Utc>) -> Result<String> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|_| Error::invalid("invalid_secret", "the secret is not base32"))?;
    let totp = totp(secret.as_ref().to_vec(), "gatehouse", "check")?;
    Ok(totp
        .generate(u64::try_from(at.timestamp()).unwrap_or(0))
        .to_string())
}

/// A new set of recovery codes: what the user is shown once, and the keyed hashes stored.
pub(crate) fn new_recovery_codes(
    keyed: &KeyedHashes,
    user_id: Uuid,
) -> Result<(Vec<SecretString>, Vec<String>)> {
    let mut shown = Vec::with_capacity(RECOVERY_CODE_COUNT);
    let mut hashes = Vec::with_capacity(RECOVERY_CODE_COUNT);
    for _ in 0..RECOVERY_CODE_COUNT {
        let mut bytes = [0u8; RECOVERY_CODE_BYTES];
        fill_random(&mut bytes)?;
        // RFC 4648 base32 (the alphabet of TOTP secrets), without padding: 16 characters.
        let plain = Secret::from(bytes.to_vec()).to_base32();
        let grouped = plain
            .as_bytes()
            .chunks(4)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        hashes.push(recovery_code_hash(keyed, user_id, &plain));
        shown.push(SecretString::from(grouped));
    }
    Ok((shown, hashes))
}

/// The stored hash of a presented recovery code, or `None` when it cannot be one (so no
/// lookup is made). Case, spaces and dashes do not matter.
pub(crate) fn presented_recovery_code(
    keyed: &KeyedHashes,
    user_id: Uuid,
    code: &SecretString,
) -> Option<String> {
    let normal: String = code
        .expose_secret()
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid =
        normal.len() == RECOVERY_CODE_BYTES * 8 / 5 && normal.bytes().all(|b| BASE32.contains(&b));
    valid.then(|| recovery_code_hash(keyed, user_id, &normal))
}

fn recovery_code_hash(keyed: &KeyedHashes, user_id: Uuid, normal: &str) -> String {
    keyed.lookup_key("recovery_code", &format!("{}:{normal}", user_id.simple()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::secrets::MasterKey;

    fn keys() -> (SealingKey, KeyedHashes) {
        let master = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        (
            master.derive_sealing_key(b"test totp").unwrap(),
            master.keyed_hashes(),
        )
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_only() {
        let (key, _) = keys();
        let user = Uuid::now_v7();
        let enrolment = new_enrolment(&key, user, "Gatehouse", "ann@example.com").unwrap();
        let now = DateTime::from_timestamp(1_800_000_015, 0).unwrap();
        let code = code_at(enrolment.secret.expose_secret(), now).unwrap();
        let step = 1_800_000_015 / 30;
        let at = |seconds: i64| now + chrono::Duration::seconds(seconds);
        assert_eq!(
            matching_step(&key, user, &enrolment.sealed, &code, now).unwrap(),
            Some(step)
        );
        assert_eq!(
            matching_step(&key, user, &enrolment.sealed, &code, at(30)).unwrap(),
            Some(step)
        );
        assert_eq!(
            matching_step(&key, user, &enrolment.sealed, &code, at(-30)).unwrap(),
            Some(step)
        );
        assert_eq!(
            matching_step(&key, user, &enrolment.sealed, &code, at(60)).unwrap(),
            None
        );
        assert_eq!(
            matching_step(&key, user, &enrolment.sealed, &code, at(-60)).unwrap(),
            None
        );
        assert_eq!(
            matching_step(&key, user, &enrolment.sealed, "12345", now).unwrap(),
            None
        );
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_account() {
        let (key, _) = keys();
        let enrolment = new_enrolment(&key, Uuid::now_v7(), "Gatehouse", "a@example.com").unwrap();
        let now = Utc::now();
        let code = code_at(enrolment.secret.expose_secret(), now).unwrap();
        assert!(matching_step(&key, Uuid::now_v7(), &enrolment.sealed, &code, now).is_err());
    }

    #[test]
    fn the_uri_and_qr_code_carry_the_secret_and_labels() {
        let (key, _) = keys();
        let enrolment = new_enrolment(&key, Uuid::now_v7(), "Gate:house", "a@example.com").unwrap();
        let uri = enrolment.otpauth_uri.expose_secret();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains(&format!("secret={}", enrolment.secret.expose_secret())),
            "{uri}"
        );
        assert!(enrolment.qr_svg.contains("<svg"), "{}", enrolment.qr_svg);
    }

    #[test]
    fn recovery_codes_match_in_any_case_and_grouping_and_differ() {
        let (_, keyed) = keys();
        let user = Uuid::now_v7();
        let (shown, hashes) = new_recovery_codes(&keyed, user).unwrap();
        assert_eq!(shown.len(), RECOVERY_CODE_COUNT);
        let mut unique = hashes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODE_COUNT);
        let first = shown[0].expose_secret();
        assert_eq!(first.len(), 19, "{first}");
        let loose = SecretString::from(first.replace('-', " ").to_lowercase());
        assert_eq!(
            presented_recovery_code(&keyed, user, &loose),
            Some(hashes[0].clone())
        );
        assert_ne!(
            presented_recovery_code(&keyed, Uuid::now_v7(), &shown[0]),
            Some(hashes[0].clone())
        );
        assert_eq!(
            presented_recovery_code(&keyed, user, &SecretString::from("short")),
            None
        );
    }
}
