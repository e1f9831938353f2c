//! Client authentication towards the issuer (introspection, revocation feed).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderValue;

use crate::VerifyError;

/// A client id and secret, kept only as the ready `Authorization: Basic` value.
#[derive(Clone)]
pub(crate) struct Credentials {
    client_id: String,
    authorization: String,
}

impl Credentials {
    /// RFC 6749 §2.3.1: each part is `application/x-www-form-urlencoded` before the two are
    /// joined by `:` and base64-encoded. Plain `basic_auth` would skip that step and break ids
    /// or secrets containing `:`, `%` or non-ASCII characters.
    pub(crate) fn new(client_id: &str, client_secret: &str) -> Self {
        let joined = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
        Self {
            client_id: client_id.to_owned(),
            authorization: format!("Basic {}", STANDARD.encode(joined)),
        }
    }

    pub(crate) fn header(&self) -> Result<HeaderValue, VerifyError> {
        let mut value = HeaderValue::from_str(&self.authorization)
            .map_err(|_| VerifyError::Config("client credentials are not a valid header".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// `application/x-www-form-urlencoded` for one value (the WHATWG URL serializer's byte rules).
pub(crate) fn form_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &byte in value.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_follows_rfc6749() {
        assert_eq!(form_encode("abc-XYZ_0.9*"), "abc-XYZ_0.9*");
        assert_eq!(form_encode("a b:c%d/é"), "a+b%3Ac%25d%2F%C3%A9");
    }

    #[test]
    fn basic_header_encodes_each_part_first() {
        let creds = Credentials::new("my app", "s:cr%t");
        // base64("my+app:s%3Acr%25t")
        let expected = format!("Basic {}", STANDARD.encode("my+app:s%3Acr%25t"));
        assert_eq!(creds.header().unwrap().to_str().unwrap(), expected);
        assert!(format!("{creds:?}").contains("[redacted]"));
        assert!(!format!("{creds:?}").contains("cr%t"));
    }
}
