//! The lockout that cannot be turned against the owner: the lock state of each login
//! address (`login_lockouts`, keyed by an HMAC of the address like the failure counters)
//! and the device tokens of clients that logged in to an account before
//! (`login_devices`), which are judged by their own failures.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginLockouts::Table)
                    .col(string_len(LoginLockouts::KeyHash, 64).primary_key())
                    .col(timestamp_with_time_zone(LoginLockouts::LockedAt))
                    .col(timestamp_with_time_zone(LoginLockouts::LockedUntil))
                    .col(integer(LoginLockouts::Failures))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_lockouts_locked_until")
                    .table(LoginLockouts::Table)
                    .col(LoginLockouts::LockedUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginDevices::Table)
                    .col(uuid(LoginDevices::Id).primary_key())
                    .col(uuid(LoginDevices::UserId))
                    .col(timestamp_with_time_zone(LoginDevices::CreatedAt))
                    .col(timestamp_with_time_zone(LoginDevices::LastUsedAt))
                    .col(timestamp_with_time_zone(LoginDevices::ExpiresAt))
                    .col(timestamp_with_time_zone_null(LoginDevices::DistrustedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(LoginDevices::Table, LoginDevices::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_devices_user_id")
                    .table(LoginDevices::Table)
                    .col(LoginDevices::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_devices_expires_at")
                    .table(LoginDevices::Table)
                    .col(LoginDevices::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginDevices::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(LoginLockouts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LoginLockouts {
    Table,
    KeyHash,
    LockedAt,
    LockedUntil,
    Failures,
}

#[derive(DeriveIden)]
enum LoginDevices {
    Table,
    Id,
    UserId,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    DistrustedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
