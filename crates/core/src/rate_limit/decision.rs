//! What a rate limit check decides, and for which class and scope: plain values the
//! error type carries, so this file depends on nothing else in the crate.

use std::time::Duration;

/// A class of requests, limited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    Login,
    Signup,
    /// Verification and reset mails, per recipient address.
    Mail,
    /// Setting a new password with a reset link.
    PasswordReset,
    /// The OAuth token and revocation endpoints.
    Token,
    Introspect,
    Authorize,
    /// Every other request.
    Api,
}

impl RateClass {
    /// Every class.
    pub const ALL: [RateClass; 8] = [
        RateClass::Login,
        RateClass::Signup,
        RateClass::Mail,
        RateClass::PasswordReset,
        RateClass::Token,
        RateClass::Introspect,
        RateClass::Authorize,
        RateClass::Api,
    ];

    /// The name of the class, as in `[rate_limit.<name>]`.
    pub fn name(self) -> &'static str {
        match self {
            RateClass::Login => "login",
            RateClass::Signup => "signup",
            RateClass::Mail => "mail",
            RateClass::PasswordReset => "password_reset",
            RateClass::Token => "token",
            RateClass::Introspect => "introspect",
            RateClass::Authorize => "authorize",
            RateClass::Api => "api",
        }
    }
}

/// What a limit counts: client IPs or accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Ip,
    Account,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ip => "ip",
            Scope::Account => "account",
        }
    }
}

/// The outcome of one check, with what the `RateLimit` headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub class: RateClass,
    pub scope: Scope,
    /// Whether this request may go on.
    pub allowed: bool,
    /// Requests per `window`.
    pub limit: u32,
    /// Requests still allowed right now, after this one.
    pub remaining: u32,
    pub window: Duration,
    /// Until the quota is whole again.
    pub reset: Duration,
    /// When refused: until the next request would be allowed.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// The policy's name in `RateLimit-Policy` and `RateLimit`: `<class>-<scope>`,
    /// e.g. `login-ip`, `login-account`.
    pub fn policy(&self) -> String {
        format!("{}-{}", self.class.name(), self.scope.name())
    }
}
