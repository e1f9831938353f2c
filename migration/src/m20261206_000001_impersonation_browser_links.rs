//! Impersonation in a browser: the one-time link that opens an admin's impersonated
//! session on the hosted pages names that session (`session_id`). Other tokens leave it
//! empty.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OneTimeTokens::Table)
                    .add_column(ColumnDef::new(OneTimeTokens::SessionId).uuid().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OneTimeTokens::Table)
                    .drop_column(OneTimeTokens::SessionId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    SessionId,
}
