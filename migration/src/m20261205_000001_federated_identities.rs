//! Identities at upstream providers (`[[federation.providers]]`) linked to accounts: one
//! row per provider account, unique by provider and subject, deleted with the account.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FederatedIdentities::Table)
                    .col(uuid(FederatedIdentities::Id).primary_key())
                    .col(uuid(FederatedIdentities::UserId))
                    .col(string_len(FederatedIdentities::ProviderId, 32))
                    .col(string_len(FederatedIdentities::Subject, 255))
                    .col(string_len_null(FederatedIdentities::Email, 320))
                    .col(timestamp_with_time_zone(FederatedIdentities::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        FederatedIdentities::LastLoginAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(FederatedIdentities::Table, FederatedIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_federated_identities_provider_subject")
                    .table(FederatedIdentities::Table)
                    .col(FederatedIdentities::ProviderId)
                    .col(FederatedIdentities::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_federated_identities_user")
                    .table(FederatedIdentities::Table)
                    .col(FederatedIdentities::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FederatedIdentities::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum FederatedIdentities {
    Table,
    Id,
    UserId,
    ProviderId,
    Subject,
    Email,
    CreatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
