//! Mail cooldowns: when a mail of one kind (verification, reset, the "account exists"
//! notice) last went to one address, keyed by an HMAC of purpose and address. Login
//! failure counters move to HMAC keys too; the old unkeyed ones are dropped (they only
//! count failures of the last few minutes).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MailCooldowns::Table)
                    .col(string_len(MailCooldowns::KeyHash, 64).primary_key())
                    .col(timestamp_with_time_zone(MailCooldowns::LastSentAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_cooldowns_last_sent_at")
                    .table(MailCooldowns::Table)
                    .col(MailCooldowns::LastSentAt)
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(Query::delete().from_table(LoginFailures::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MailCooldowns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MailCooldowns {
    Table,
    KeyHash,
    LastSentAt,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
}
