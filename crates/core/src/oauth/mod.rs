//! OAuth 2.0: the clients (apps and services), their grants at the token endpoint,
//! introspection (RFC 7662) and revocation (RFC 7009). The authorization code flow is in
//! the `oidc` folder.

pub mod clients;
pub mod grants;
pub mod introspection;
pub mod revocation;
