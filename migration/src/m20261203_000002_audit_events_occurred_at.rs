//! The periodic purge deletes the audit entries older than `audit.retention`, oldest
//! first, and finds its own last run by the newest `expired_rows_purged` entry: both read
//! `audit_events` by `occurred_at`, which had no index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_occurred_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OccurredAt)
                    // A large PostgreSQL table's index may be built by hand beforehand,
                    // `CREATE INDEX CONCURRENTLY` (docs/operations.md, the audit log).
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_audit_events_occurred_at")
                    .table(AuditEvents::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    OccurredAt,
}
