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
/// An internationalised domain is stored in its ASCII (`xn--`, punycode) form, converted
/// by IDNA (UTS #46, the mapping browsers use), so that `ann@bücher.example`,
/// `ann@BÜCHER.example` and `ann@xn--bcher-kva.example` are one account. An `xn--`
/// label given in ASCII must be the canonical encoding of a valid IDN label.
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
        let trimmed = raw.trim();
        if trimmed.len() > MAX_EMAIL_LENGTH * 4 {
            return Err(too_long());
        }
        // The last `@`: any other one would have to be in a quoted local part, refused.
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(invalid)?;
        // ASCII case folding only: a non-ASCII local part is refused before any Unicode
        // lower-casing could turn it into an ASCII one (U+212A KELVIN SIGN into `k`).
        let local = local.to_ascii_lowercase();
        if !is_dot_atom(&local) {
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
/// A non-ASCII domain is converted by IDNA (UTS #46 with the STD3 host-name rules, the
/// `idna` crate); its ASCII characters must already be host-name characters, so that
/// nothing but the conversion changes (no percent-decoding, no dropped characters).
fn ascii_domain(domain: &str) -> Option<String> {
    if !domain
        .chars()
        .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return None;
    }
    let ascii = if domain.is_ascii() {
        let ascii = domain.to_ascii_lowercase();
        // An `xn--` label must decode, and encode back to itself: one spelling per
        // domain, or two addresses could name one mailbox.
        if ascii.split('.').any(|label| label.starts_with("xn--")) {
            let (unicode, decoded) = idna::domain_to_unicode(&ascii);
            if decoded.is_err() || idna::domain_to_ascii_strict(&unicode).ok()? != ascii {
                return None;
            }
        }
        ascii
    } else {
        idna::domain_to_ascii_strict(domain).ok()?
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
    host_names.then_some(ascii)
}

/// Why a display name (a person's or an OAuth client's) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Nothing but white space.
    Empty,
    /// More characters than allowed (counted after normalisation).
    TooLong,
    /// A control character or one that hides or reorders the text around it.
    HiddenText,
}

/// A name people read (in mails, on the consent page, in the admin API): trimmed, put
/// in Unicode Normalization Form C, so that a name typed as `e` + combining acute and
/// one typed as `é` are stored alike and count alike, and refused when it holds a
/// character that could make a page or mail show something other than what it says:
///
/// - control characters (C0, DEL, C1), including line breaks and tabs;
/// - bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069)
///   and direction marks (U+200E, U+200F, U+061C): "Trojan Source"-style reordering,
///   e.g. a client named `Bank\u{202e}gnp.exe` shows as `Bankexe.png`;
/// - invisible characters that belong to no script: zero-width space (U+200B), word
///   joiner (U+2060), byte-order mark (U+FEFF), soft hyphen (U+00AD), and the line and
///   paragraph separators (U+2028, U+2029);
/// - unassigned and private-use code points are kept: they are rare in names and
///   refusing them would need a Unicode table that ages.
///
/// U+200C and U+200D (zero-width non-joiner and joiner) stay: Persian, Indic scripts and
/// emoji sequences need them.
pub fn display_name(raw: &str, max_chars: usize) -> std::result::Result<String, NameProblem> {
    use unicode_normalization::UnicodeNormalization as _;
    let name: String = raw.trim().nfc().collect();
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.chars().any(|c| c.is_control() || hides_text(c)) {
        return Err(NameProblem::HiddenText);
    }
    if name.chars().count() > max_chars {
        return Err(NameProblem::TooLong);
    }
    Ok(name)
}

/// Characters that reorder or hide what a page or mail shows around them.
fn hides_text(c: char) -> bool {
    matches!(
        c,
        '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{061c}'
            | '\u{200b}'
            | '\u{2060}'
            | '\u{feff}'
            | '\u{00ad}'
            | '\u{2028}'
            | '\u{2029}'
    )
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

    #[test]
    fn punycode_labels_must_be_canonical() {
        // Not valid punycode, or not the encoding of anything IDNA allows.
        for bad in [
            "a@xn--.example",
            "a@xn--zz-.example",
            "a@xn--a.example",
            "a@xn--ls8h-.example",
        ] {
            assert!(refused(bad), "{bad:?} was accepted");
        }
        // A Unicode domain in upper case folds like an ASCII one.
        assert_eq!(
            Email::parse("a@B\u{dc}CHER.EXAMPLE").unwrap().as_str(),
            "a@xn--bcher-kva.example"
        );
        // Full-width letters are mapped by IDNA to their ASCII forms.
        assert_eq!(
            Email::parse("a@\u{ff45}xample.com").unwrap().as_str(),
            "a@example.com"
        );
        // Characters that map to ones STD3 forbids in host names.
        assert!(refused("a@b\u{fc}cher\u{ff0f}x.example"));
        assert!(refused("a@b\u{fc}cher\u{2100}x.example"));
        // A non-ASCII character that lower-cases to ASCII is still non-ASCII.
        assert!(refused("\u{212a}im@example.com"));
    }

    #[test]
    fn display_names_are_nfc_and_refuse_hidden_text() {
        assert_eq!(
            display_name("  Jose\u{301} ", 200),
            Ok("Jos\u{e9}".to_owned())
        );
        assert_eq!(
            display_name("Jose\u{301}", 200),
            display_name("Jos\u{e9}", 200)
        );
        assert_eq!(display_name("   ", 200), Err(NameProblem::Empty));
        assert_eq!(display_name("abcd", 3), Err(NameProblem::TooLong));
        // Counted after NFC: e + combining acute is one character.
        assert_eq!(
            display_name("e\u{301}e\u{301}e\u{301}", 3),
            Ok("\u{e9}\u{e9}\u{e9}".to_owned())
        );
        for bad in [
            "Bank\u{202e}gnp.exe",
            "a\u{2066}b",
            "a\u{200f}b",
            "a\u{200b}b",
            "a\nb",
            "a\tb",
            "a\u{85}b",
            "a\u{ad}b",
            "a\u{feff}b",
        ] {
            assert_eq!(
                display_name(bad, 200),
                Err(NameProblem::HiddenText),
                "{bad:?}"
            );
        }
        // Joiners that scripts and emoji need stay.
        assert!(display_name("\u{645}\u{200c}\u{627}", 200).is_ok());
        assert!(display_name("\u{1f468}\u{200d}\u{1f469}", 200).is_ok());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::{Email, MAX_EMAIL_LENGTH, display_name};

        /// Address-like strings: most parse, many do not, every branch gets visited.
        fn address_like() -> impl Strategy<Value = String> {
            (
                "[ \t]{0,2}",
                "[A-Za-z0-9._+\\-'\"()<> ]{0,20}",
                "@{0,2}",
                "[A-Za-z0-9.\\-\u{e4}\u{f6}\u{fc}\u{df}\u{e9}\u{f1}\u{4e2d}\u{6587}\u{0430}\u{ff21}]{0,30}",
                "(\\.[A-Za-z]{2,6})?",
                "[ \t]{0,2}",
            )
                .prop_map(|(a, local, at, domain, tld, z)| format!("{a}{local}{at}{domain}{tld}{z}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn parsing_never_panics(raw in any::<String>()) {
                let _ = Email::parse(&raw);
            }

            #[test]
            fn parsing_address_like_strings_never_panics(raw in address_like()) {
                let _ = Email::parse(&raw);
            }

            #[test]
            fn the_normal_form_parses_to_itself(raw in address_like()) {
                if let Ok(email) = Email::parse(&raw) {
                    let again = Email::parse(email.as_str());
                    prop_assert_eq!(again.as_ref().ok(), Some(&email));
                }
            }

            #[test]
            fn the_normal_form_is_plain_lower_case_ascii(raw in address_like()) {
                if let Ok(email) = Email::parse(&raw) {
                    let s = email.as_str();
                    prop_assert!(s.is_ascii());
                    prop_assert_eq!(s.to_ascii_lowercase(), s);
                    prop_assert!(s.len() <= MAX_EMAIL_LENGTH);
                    prop_assert_eq!(s.matches('@').count(), 1);
                    prop_assert_eq!(s.trim(), s);
                }
            }

            #[test]
            fn case_and_surrounding_space_do_not_matter(raw in address_like()) {
                // ASCII case: the whole address folds (Unicode upper-casing is not
                // reversible: `ß` becomes `SS`, a different domain).
                let upper = format!(" {} ", raw.to_ascii_uppercase());
                prop_assert_eq!(Email::parse(&raw).ok(), Email::parse(&upper).ok());
            }

            #[test]
            fn a_unicode_domain_and_its_punycode_are_one_address(
                local in "[a-z0-9]{1,10}",
                label in "[a-z\u{e4}\u{f6}\u{fc}\u{e9}\u{f1}\u{4e2d}\u{0430}]{1,12}",
            ) {
                let unicode = format!("{local}@{label}.example");
                if let Ok(email) = Email::parse(&unicode) {
                    let ascii_domain = idna::domain_to_ascii(&format!("{label}.example")).unwrap();
                    let punycode = format!("{local}@{ascii_domain}");
                    prop_assert_eq!(Email::parse(&punycode).ok(), Some(email.clone()));
                    prop_assert_eq!(email.as_str(), punycode.as_str());
                }
            }

            #[test]
            fn display_names_are_stable(raw in any::<String>()) {
                if let Ok(name) = display_name(&raw, 200) {
                    prop_assert_eq!(display_name(&name, 200), Ok(name.clone()));
                    prop_assert!(!name.chars().any(char::is_control));
                    prop_assert!(name.chars().count() <= 200);
                }
            }
        }
    }
}
