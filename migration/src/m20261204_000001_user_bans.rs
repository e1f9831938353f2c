//! Account bans: an admin keeps an account from logging in, for good or until a time,
//! with a reason. `banned_at` is set while a ban is stored (lifting it clears all three);
//! a ban whose `banned_until` has passed no longer holds. SQLite cannot add several
//! columns in one statement, so each column is its own change.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in [
            timestamp_with_time_zone_null(Users::BannedAt),
            timestamp_with_time_zone_null(Users::BannedUntil),
            string_len_null(Users::BanReason, 500),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Users::BanReason, Users::BannedUntil, Users::BannedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    BannedAt,
    BannedUntil,
    BanReason,
}
