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
/// An internationalised domain is stored in its ASCII (`xn--`) form, so that
/// `ann@bücher.example` and `ann@xn--bcher-kva.example` are one account.
///
/// Only the plain forms that every mail server delivers as written are accepted, so
/// that one mailbox cannot hold two accounts and no mail fails silently at delivery:
///
/// - the local part is a dot-atom (RFC 5322 3.2.3): ASCII letters, digits and
///   ``!#$%&'*+-/=?^_`{|}~``, with single dots between them, at most 64 characters.
///   Refused: quoted local parts (`"ann"@example.com`, which mail servers deliver to
///   `ann@example.com`), comments `(..)`, white space, angle brackets, backslashes, a
///   leading, trailing or double dot, and any non-ASCII character (SMTPUTF8 is not
///   something every server supports, and look-alike letters would make look-alike
///   accounts);
/// - the domain is at least two labels of letters, digits and inner hyphens (each at
///   most 63 characters), with no trailing dot, no domain literal (`[192.0.2.1]`), and
///   no bare IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Longest address accepted (RFC 5321 path limit).
const MAX_EMAIL_LENGTH: usize = 254;
/// Longest local part accepted (RFC 5321 4.5.3.1.1).
const MAX_LOCAL_PART_LENGTH: usize = 64;
/// Longest domain label (RFC 1035 2.3.4).
const MAX_LABEL_LENGTH: usize = 63;

impl Email {
    /// Validates and normalises an address.
    pub fn parse(raw: &str) -> Result<Self> {
        let invalid = || Error::invalid("invalid_email", "email: not a valid email address");
        let too_long = || Error::invalid("invalid_email", "email: the address is too long");
        let lowered = raw.trim().to_lowercase();
        if lowered.len() > MAX_EMAIL_LENGTH * 4 {
            return Err(too_long());
        }
        // The last `@`: any other one would have to be in a quoted local part, refused.
        let (local, domain) = lowered.rsplit_once('@').ok_or_else(invalid)?;
        if !is_dot_atom(local) {
            return Err(invalid());
        }
        if local.len() > MAX_LOCAL_PART_LENGTH {
            return Err(too_long());
        }
        let domain = ascii_domain(domain).ok_or_else(invalid)?;
        let normalised = format!("{local}@{domain}");
        if normalised.len() > MAX_EMAIL_LENGTH {
            return Err(too_long());
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

/// An RFC 5322 dot-atom of ASCII `atext`: no quotes, comments, white space or brackets.
fn is_dot_atom(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
        })
}

/// The domain in ASCII form if it is a dotted host name of letter-digit-hyphen labels.
/// A non-ASCII domain is converted by IDNA (UTS #46, the mapping browsers use); its
/// ASCII characters must already be host-name characters, so that nothing but the
/// conversion changes (no percent-decoding, no dropped characters).
fn ascii_domain(domain: &str) -> Option<String> {
    let converted;
    let ascii = if domain.is_ascii() {
        domain
    } else {
        if !domain
            .chars()
            .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return None;
        }
        converted = match url::Host::parse(domain).ok()? {
            url::Host::Domain(name) => name,
            url::Host::Ipv4(_) | url::Host::Ipv6(_) => return None,
        };
        &converted
    };
    let labels: Vec<&str> = ascii.split('.').collect();
    // A dot rules out `user@localhost`-style addresses, which cannot receive mail from
    // the internet; an all-digit last label would be an IP address, not a domain.
    let host_names = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=MAX_LABEL_LENGTH).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    host_names.then(|| ascii.to_owned())
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
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

    fn refused(address: &str) -> bool {
        matches!(
            Email::parse(address),
            Err(Error::InvalidInput {
                code: "invalid_email",
                ..
            })
        )
    }

    #[test]
    fn forms_that_mail_servers_rewrite_are_refused() {
        for bad in [
            // Quoted local parts: delivered to the unquoted mailbox, or not at all.
            "\"alice\"@example.com",
            "\"a b\"@example.com",
            "\"a@b\"@example.com",
            "\"\"@example.com",
            // Comments, anywhere.
            "alice(comment)@example.com",
            "(comment)alice@example.com",
            "alice@(comment)example.com",
            "alice@example.com(comment)",
            // White space inside, of any kind.
            "al ice@example.com",
            "alice @example.com",
            "alice@ example.com",
            "alice\t@example.com",
            "ali\u{a0}ce@example.com",
            // Angle brackets and display names.
            "<alice@example.com>",
            "Alice <alice@example.com>",
            "alice@example.com>",
            // Escapes and other specials outside atext.
            "al\\ice@example.com",
            "al,ice@example.com",
            "al;ice@example.com",
            "al:ice@example.com",
            "al[ice@example.com",
            "alice@@example.com",
            "a@b@example.com",
            // Dots.
            "alice.@example.com",
            ".alice@example.com",
            "al..ice@example.com",
            ".@example.com",
            "alice@example.com.",
            "alice@.example.com",
            "alice@example..com",
            // Domain literals and bare IP addresses.
            "alice@[192.0.2.1]",
            "alice@[ipv6:2001:db8::1]",
            "alice@192.0.2.1",
            // Domain labels.
            "alice@-example.com",
            "alice@example-.com",
            "alice@exa_mple.com",
            "alice@exa%6dple.com",
            "alice@b\u{fc}%63her.example",
            // Control and non-ASCII characters in the local part.
            "ali\u{0}ce@example.com",
            "al\u{7f}ice@example.com",
            "j\u{f6}rg@example.com",
            "\u{430}lice@example.com",
            "alice\u{202e}@example.com",
            // Length limits.
            "",
        ] {
            assert!(refused(bad), "{bad:?} was accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(refused(&long_local));
        let long_label = format!("a@{}.com", "b".repeat(64));
        assert!(refused(&long_label));
        let long_domain = format!("a@{}com", "b23456789.".repeat(25));
        assert!(refused(&long_domain));
    }

    #[test]
    fn plain_addresses_are_accepted_as_written() {
        for good in [
            "a.b+tag@sub.example.com",
            "o'brien@example.ie",
            "x@example.co",
            "first_last-2@mail-1.example.org",
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "1234@123.example",
            "a@xn--bcher-kva.example",
        ] {
            assert_eq!(
                Email::parse(good).map(|e| e.as_str().to_owned()).ok(),
                Some(good.to_owned()),
                "{good:?}"
            );
        }
        let longest_local = format!("{}@example.com", "a".repeat(64));
        assert!(Email::parse(&longest_local).is_ok());
    }

    #[test]
    fn internationalised_domains_are_stored_in_ascii_form() {
        assert_eq!(
            Email::parse("Ann@B\u{dc}cher.Example").unwrap().as_str(),
            "ann@xn--bcher-kva.example"
        );
        assert_eq!(
            Email::parse("ann@b\u{fc}cher.example").unwrap(),
            Email::parse("ann@xn--bcher-kva.example").unwrap()
        );
    }
}
