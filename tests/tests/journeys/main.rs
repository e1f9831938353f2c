//! Black-box journeys: the real server on a socket, a real database, a real SMTP
//! listener. One module per user journey; every test runs on SQLite and, when
//! `GATEHOUSE_TEST_POSTGRES` is set, on PostgreSQL too.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

mod admin;
mod bad_input;
mod hashing;
mod health;
mod logging;
mod login;
mod mail_transports;
mod maintenance;
mod passwords;
mod sessions;
mod signup;
mod tokens;
