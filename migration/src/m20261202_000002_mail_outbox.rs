//! The mail outbox: every mail the server promises is written here in the transaction
//! that makes the promise (the token it carries, the account it is about), and sent by a
//! worker on each instance. The message is stored sealed (AES-256-GCM under a key
//! derived from the master key) and its column is emptied once it is sent.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MailOutbox::Table)
                    .col(uuid(MailOutbox::Id).primary_key())
                    .col(string_len(MailOutbox::Recipient, 320))
                    .col(string_len(MailOutbox::Kind, 32))
                    .col(string_len(MailOutbox::Status, 16))
                    .col(string_len(MailOutbox::MessageId, 200))
                    .col(blob_null(MailOutbox::SealedMessage))
                    .col(integer(MailOutbox::Attempts))
                    .col(timestamp_with_time_zone_null(MailOutbox::NextAttemptAt))
                    .col(uuid_null(MailOutbox::ClaimId))
                    .col(text_null(MailOutbox::LastError))
                    .col(timestamp_with_time_zone(MailOutbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(MailOutbox::LastAttemptAt))
                    .col(timestamp_with_time_zone_null(MailOutbox::SentAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_outbox_status_next_attempt_at")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::Status)
                    .col(MailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MailOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    Recipient,
    Kind,
    Status,
    MessageId,
    SealedMessage,
    Attempts,
    NextAttemptAt,
    ClaimId,
    LastError,
    CreatedAt,
    LastAttemptAt,
    SentAt,
}
