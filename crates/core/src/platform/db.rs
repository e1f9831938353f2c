//! Opening the database. SQLite and PostgreSQL share one schema, which the server's
//! start-up migrates (the domain carries no schema tooling).

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::{Error, Result};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

/// Opens a connection pool. For a SQLite file, its folder is created first.
pub async fn connect(options: &DatabaseOptions) -> Result<DatabaseConnection> {
    if let Some(path) = sqlite_file(&options.url)
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
    }
    let mut connect = ConnectOptions::new(options.url.clone());
    connect
        .max_connections(options.max_connections)
        .connect_timeout(options.connect_timeout)
        .acquire_timeout(options.connect_timeout)
        // Statements carry token hashes as parameters: they never go to the log.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                .create_if_missing(true)
        });
    Database::connect(connect)
        .await
        .map_err(|e| Error::Unavailable {
            reason: "database_unreachable",
            source: Some(Box::new(e)),
        })
}

fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}
