//! Email changes: a one-time token that confirms a new address (`change_email`) or undoes
//! a change (`undo_email_change`) carries the address it is about: the new one, or the
//! old one to restore. Other tokens leave it empty.

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
                    .add_column(ColumnDef::new(OneTimeTokens::Email).string_len(320).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OneTimeTokens::Table)
                    .drop_column(OneTimeTokens::Email)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    Email,
}
