//! Who a token is for: the `aud` of user tokens issued to a client. See
//! [`crate::tokens::api_scopes`] for what Gatehouse's own API then requires.

use gatehouse_entity::clients;

use crate::platform::lists::split;
use crate::tokens::api_scopes::{STANDARD_SCOPES, is_api_scope};

/// The built-in first-party client that `/api/v1/login` acts for. Created at first start.
pub const API_CLIENT_ID: &str = "gatehouse-api";

/// The `aud` of a user token issued to a client (code flow, refresh): the audience an
/// admin registered for it, else the client itself. Only the built-in client gets
/// Gatehouse's own API audience without registering it: an app's token is for the app,
/// never for the account or admin API by default.
pub(crate) fn token_audience(client: &clients::Model, api_audience: &str) -> String {
    match &client.audience {
        Some(audience) => audience.clone(),
        None if client.id == API_CLIENT_ID => api_audience.to_owned(),
        None => client.id.clone(),
    }
}

/// What of an earlier grant (a refresh token's scope, a code's) the client may still
/// have: the standard scopes and those registered for it now (the built-in client keeps
/// Gatehouse's API scopes). A scope an admin takes off a client is gone from every token
/// its refresh tokens and codes yield from then on.
pub(crate) fn still_allowed(client: &clients::Model, granted: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = split(granted?)
        .filter(|scope| may_have(client, scope))
        .collect();
    (!kept.is_empty()).then(|| kept.join(" "))
}

/// Whether a client may be granted a scope: a standard one, one registered for it, and
/// for the built-in client Gatehouse's API scopes.
pub(crate) fn may_have(client: &clients::Model, scope: &str) -> bool {
    STANDARD_SCOPES.iter().any(|(name, _)| *name == scope)
        || split(&client.scopes).any(|allowed| allowed == scope)
        || (client.id == API_CLIENT_ID && is_api_scope(scope))
}
