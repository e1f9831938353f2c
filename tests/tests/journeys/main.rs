//! Black-box journeys: the real server on a socket, a real database, a real SMTP
//! listener. One module per user journey; every test runs on SQLite and, when
//! `GATEHOUSE_TEST_POSTGRES` is set, on PostgreSQL too.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "journey helpers outside #[test] functions fail the test loudly"
)]

mod account_deletion;
mod admin;
mod app_tokens;
mod backchannel_logout;
mod backend_extractor;
mod bad_input;
mod bans;
mod browser_flow;
mod concurrent_writes;
mod consent_binding;
mod database_outage;
mod email_change;
mod federation;
mod hashing;
mod health;
mod hosted_pages;
mod impersonation;
mod jwt_interop;
mod lockout;
mod logging;
mod login;
mod mail_outbox;
mod mail_transports;
mod maintenance;
mod metrics;
mod mfa;
mod oauth_clients;
mod oauth_tokens;
mod oidc;
mod openapi;
mod openid_client;
mod passwords;
mod rate_limits;
mod request_limits;
mod revocation_feed;
mod secrets_at_rest;
mod security_headers;
mod sessions;
mod signing_keys;
mod signup;
mod step_up;
mod token_properties;
mod tokens;
mod unicode;
mod valid_html;
