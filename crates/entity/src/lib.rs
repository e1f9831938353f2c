//! SeaORM entities of Gatehouse, one module per table. Data only: the rules live in
//! `gatehouse-core`, the schema in `gatehouse-migration`.

pub mod audit_events;
pub mod authorization_codes;
pub mod backchannel_deliveries;
pub mod browser_sessions;
pub mod clients;
pub mod consents;
pub mod federated_identities;
pub mod login_devices;
pub mod login_failures;
pub mod login_lockouts;
pub mod mail_cooldowns;
pub mod mail_outbox;
pub mod one_time_tokens;
pub mod recovery_codes;
pub mod refresh_tokens;
pub mod session_revocations;
pub mod sessions;
pub mod signing_keys;
pub mod totp_credentials;
pub mod users;
