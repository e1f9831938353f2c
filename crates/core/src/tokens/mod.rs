//! Tokens: the signing keys and their rotation, access tokens (RFC 9068), ID tokens, and
//! who a token is for ([`audience`], and [`api_scopes`] for Gatehouse's own API).

pub mod access;
pub mod api_scopes;
pub mod audience;
pub mod id_token;
pub mod keys;
