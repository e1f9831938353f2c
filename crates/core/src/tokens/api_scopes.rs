//! Who may call Gatehouse's own JSON API. The account API (`/api/v1/me`, sessions,
//! password) and the admin API are resources like any other: they accept only user
//! tokens whose `aud` is `tokens.default_audience` and whose `scope` names them.
//!
//! Tokens of the built-in login and refresh endpoints carry these scopes. An app gets
//! them only when an admin registered it for them: the scopes among its allowed ones and
//! `tokens.default_audience` as its audience. A token an app got through the code flow is
//! otherwise for the app's own resource and for userinfo, never for this API.

use crate::platform::lists::split;

/// The scope of the account API: the caller's profile, sessions and password.
pub const ACCOUNT_SCOPE: &str = "gatehouse:account";

/// The scope of the admin API; the user must also have the admin role.
pub const ADMIN_SCOPE: &str = "gatehouse:admin";

/// The scopes every client may ask for, with what they mean to the user.
pub const STANDARD_SCOPES: [(&str, &str); 4] = [
    ("openid", "Know which account is yours"),
    ("email", "See your email address"),
    ("profile", "See your name"),
    (
        "offline_access",
        "Stay connected to your account while you are away",
    ),
];

/// Both API scopes, as a `scope` list (either opens some of the API).
pub const API_SCOPE_LIST: &str = "gatehouse:account gatehouse:admin";

/// The scopes that open Gatehouse's own API, with what they mean to the user.
pub const API_SCOPES: [(&str, &str); 2] = [
    (
        ACCOUNT_SCOPE,
        "See and manage your account: sessions, password and profile",
    ),
    (
        ADMIN_SCOPE,
        "Use your administrator rights: manage users, sessions and applications",
    ),
];

/// Whether a scope is one of Gatehouse's own API.
pub fn is_api_scope(scope: &str) -> bool {
    API_SCOPES.iter().any(|(name, _)| *name == scope)
}

/// Which parts of Gatehouse's API a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApiAccess {
    pub account: bool,
    pub admin: bool,
}

impl ApiAccess {
    /// Everything: the hosted pages act as Gatehouse itself.
    pub const FULL: ApiAccess = ApiAccess {
        account: true,
        admin: true,
    };

    /// What a token's `scope` claim opens.
    pub fn of_scope(scope: Option<&str>) -> Self {
        let scopes: Vec<&str> = scope.map(|s| split(s).collect()).unwrap_or_default();
        Self {
            account: scopes.contains(&ACCOUNT_SCOPE),
            admin: scopes.contains(&ADMIN_SCOPE),
        }
    }
}

/// The scope of a login through the built-in client: Gatehouse's whole API. The built-in
/// client is Gatehouse itself; what the user may do there is their role's, read at each
/// request (so a new role applies to existing tokens at once).
pub(crate) fn builtin_login_scope() -> String {
    API_SCOPE_LIST.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_scopes_open_the_api() {
        assert_eq!(ApiAccess::of_scope(None), ApiAccess::default());
        assert_eq!(
            ApiAccess::of_scope(Some("openid email")),
            ApiAccess::default()
        );
        assert_eq!(
            ApiAccess::of_scope(Some("openid gatehouse:account")),
            ApiAccess {
                account: true,
                admin: false
            }
        );
        assert_eq!(
            ApiAccess::of_scope(Some(&builtin_login_scope())),
            ApiAccess::FULL
        );
        assert!(!ApiAccess::of_scope(Some("gatehouse:accounts")).account);
    }
}
