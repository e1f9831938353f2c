//! Values validated at the edge: once you hold an [`Email`] or a [`Password`], it is valid.

use secrecy::{ExposeSecret, SecretString};

use crate::settings::PasswordSettings;
use crate::{Error, Result};

/// A syntactically valid email address in its normalised form.
///
/// Normalisation: surrounding white space is removed and the whole address is
/// lower-cased, so `Ann@Example.COM` and `ann@example.com` are one account. (RFC 5321
/// lets the local part be case-sensitive, but no mail provider in practice treats it so,
/// and two accounts differing only in case are a support and phishing hazard.) Dots and
/// `+tags` are kept as written: they are different addresses for most providers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Longest address accepted (RFC 5321 path limit).
const MAX_EMAIL_LENGTH: usize = 254;

impl Email {
    /// Validates and normalises an address.
    pub fn parse(raw: &str) -> Result<Self> {
        let normalised = raw.trim().to_lowercase();
        if normalised.len() > MAX_EMAIL_LENGTH {
            return Err(Error::invalid(
                "invalid_email",
                "email: the address is too long",
            ));
        }
        let valid = email_address::EmailAddress::parse_with_options(
            &normalised,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .is_ok();
        // A dot in the domain rules out `user@localhost`-style addresses, which cannot
        // receive mail from the internet.
        let has_dotted_domain = normalised
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
        if !valid || !has_dotted_domain {
            return Err(Error::invalid(
                "invalid_email",
                "email: not a valid email address",
            ));
        }
        Ok(Self(normalised))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed by the user. Never printed: `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// A password being chosen: it must meet the length rules.
    pub fn new_choice(raw: SecretString, rules: &PasswordSettings, field: &str) -> Result<Self> {
        let length = raw.expose_secret().chars().count();
        if length < rules.min_length {
            return Err(Error::invalid(
                "password_too_short",
                format!(
                    "{field}: must have at least {} characters",
                    rules.min_length
                ),
            ));
        }
        Self::presented(raw, rules, field)
    }

    /// A password presented to log in: only the upper bound applies, so that accounts
    /// imported under older rules can still log in, and no huge input reaches the hasher.
    pub fn presented(raw: SecretString, rules: &PasswordSettings, field: &str) -> Result<Self> {
        if raw.expose_secret().chars().count() > rules.max_length {
            return Err(Error::invalid(
                "password_too_long",
                format!("{field}: must have at most {} characters", rules.max_length),
            ));
        }
        Ok(Self(raw))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub(crate) fn from_stored(stored: &str) -> Self {
        if stored == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::invalid(
                "invalid_role",
                "role: must be `user` or `admin`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ann.Lee+x@Example.COM ").unwrap().as_str(),
            "ann.lee+x@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@localhost",
            "a b@example.com",
            "Ann <ann@example.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
