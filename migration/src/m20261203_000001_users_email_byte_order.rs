//! The admin user search is a prefix match on `users.email`, run as a range
//! (`email >= prefix AND email < bound`) on its unique index. That range is the prefix
//! only when addresses compare byte by byte. SQLite's default collation (`BINARY`) does;
//! on PostgreSQL the column takes the database's collation, and a language collation
//! (`en_US.UTF-8`, ...) orders `ab-d` next to `abd`, so the range would find addresses
//! that do not start with the prefix and miss some that do. The column gets the `C`
//! collation there, which also rebuilds its unique index in that order. Equality is
//! unchanged: PostgreSQL's deterministic collations are equal only on equal bytes, and
//! stored addresses are normalised lower-case ASCII.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    r#"ALTER TABLE "users" ALTER COLUMN "email" TYPE varchar(320) COLLATE "C""#,
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    r#"ALTER TABLE "users" ALTER COLUMN "email" TYPE varchar(320) COLLATE "default""#,
                )
                .await?;
        }
        Ok(())
    }
}
