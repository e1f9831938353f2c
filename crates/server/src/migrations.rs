//! Schema migrations belong to start-up: `serve` applies them when
//! `database.auto_migrate` is on, `gatehouse migrate up|status` on demand. The domain
//! crate knows nothing of them.

use gatehouse_core::Error;
use gatehouse_migration::{MigrationStatus, Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), Error> {
    Ok(Migrator::up(db, None).await?)
}

/// One line per migration: its name and whether it is applied.
pub async fn migration_status(db: &DatabaseConnection) -> Result<Vec<(String, bool)>, Error> {
    let migrations = Migrator::get_migration_with_status(db).await?;
    Ok(migrations
        .into_iter()
        .map(|m| {
            (
                m.name().to_owned(),
                matches!(m.status(), MigrationStatus::Applied),
            )
        })
        .collect())
}
