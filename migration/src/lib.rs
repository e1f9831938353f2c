//! Schema migrations. One file per change, named by date; a released file is never edited.
//! Migrations describe tables with `sea-query` only and never import the entity crate:
//! entities move on, migrations stay as they were run.

pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial_schema;
mod m20261123_000002_openid_connect;
mod m20261201_000001_api_scopes;
mod m20261201_000002_mail_cooldowns;
mod m20261202_000001_login_lockouts;
mod m20261202_000002_mail_outbox;
mod m20261203_000001_users_email_byte_order;
mod m20261203_000002_audit_events_occurred_at;
mod m20261204_000001_user_bans;
mod m20261204_000002_email_changes;
mod m20261204_000003_mfa_and_step_up;
mod m20261205_000001_federated_identities;
mod m20261206_000001_impersonation_browser_links;

/// Every migration of Gatehouse, in the order they run.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial_schema::Migration),
            Box::new(m20261123_000002_openid_connect::Migration),
            Box::new(m20261201_000001_api_scopes::Migration),
            Box::new(m20261201_000002_mail_cooldowns::Migration),
            Box::new(m20261202_000001_login_lockouts::Migration),
            Box::new(m20261202_000002_mail_outbox::Migration),
            Box::new(m20261203_000001_users_email_byte_order::Migration),
            Box::new(m20261203_000002_audit_events_occurred_at::Migration),
            Box::new(m20261204_000001_user_bans::Migration),
            Box::new(m20261204_000002_email_changes::Migration),
            Box::new(m20261204_000003_mfa_and_step_up::Migration),
            Box::new(m20261205_000001_federated_identities::Migration),
            Box::new(m20261206_000001_impersonation_browser_links::Migration),
        ]
    }
}
