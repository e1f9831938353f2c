//! Opening the database. SQLite and PostgreSQL share one schema, which the server's
//! start-up migrates (the domain carries no schema tooling).
//!
//! Reads and writes take different connections ([`Database`]): SQLite lets one connection
//! write at a time, so on SQLite every write goes through one connection of its own and
//! queues for it, instead of several pooled connections fighting over the file's lock.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::{Error, Result};

/// How many connections write to a SQLite database: one. SQLite has one writer per
/// database file; a second connection of ours would only wait for the first inside
/// SQLite (`busy_timeout`, a sleep-and-retry loop) instead of in the pool's queue.
pub const SQLITE_WRITERS: u32 = 1;

/// How long a SQLite connection waits for the write lock another process holds (the
/// command line writing while the server runs, a second server on the same file) before
/// the statement fails with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database as Gatehouse uses it: connections for reads, and the connections that
/// every write (every transaction, every single-statement insert, update or delete) goes
/// through.
///
/// On SQLite `writes` is a pool of exactly [`SQLITE_WRITERS`] connection: concurrent
/// writes wait for it in the pool's first-come, first-served queue, each holding it for
/// one short transaction. Each write transaction begins `IMMEDIATE` ([`begin_write`]), so
/// it holds the file's write lock from its first statement: a transaction that reads and
/// then writes can never find its snapshot made stale by another process's write (that
/// fails at once with "database is locked", whatever the busy timeout); it waits at
/// `BEGIN` instead. `reads` (`database.max_connections`) opens its connections read-only:
/// WAL readers never wait for the writer, and a write sent to them by mistake fails at
/// once rather than contending for the lock. On PostgreSQL, which has row locks and
/// many writers, both are the same pool. An in-memory SQLite database is one per
/// connection, so there too both are one pool.
#[derive(Debug, Clone)]
pub struct Database {
    reads: DatabaseConnection,
    writes: DatabaseConnection,
}

impl Database {
    /// The connections for reads.
    pub fn reads(&self) -> &DatabaseConnection {
        &self.reads
    }

    /// The connections writes go through (the only one, on SQLite); migrations too.
    pub fn writes(&self) -> &DatabaseConnection {
        &self.writes
    }

    /// Begins a write transaction (see [`begin_write`]).
    pub async fn begin_write(&self) -> Result<DatabaseTransaction> {
        Ok(begin_write(&self.writes).await?)
    }
}

/// Begins a transaction on `writer`, `IMMEDIATE` on SQLite: it takes the write lock at
/// `BEGIN` (waiting up to the busy timeout for another process to release it), so no
/// statement of it can fail on a lock later. PostgreSQL ignores the mode.
pub async fn begin_write(
    writer: &DatabaseConnection,
) -> std::result::Result<DatabaseTransaction, DbErr> {
    writer
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

/// Opens the database: on SQLite a file (its folder created first) with one writer
/// connection and a pool of read-only connections, on PostgreSQL one pool.
pub async fn connect(options: &DatabaseOptions) -> Result<Database> {
    let file = sqlite_file(&options.url);
    if let Some(path) = file
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
    }
    let sqlite = DbBackend::Sqlite.is_prefix_of(&options.url);
    if !sqlite || file.is_none() {
        let pool = open(options, options.max_connections, false).await?;
        return Ok(Database {
            reads: pool.clone(),
            writes: pool,
        });
    }
    // The writer first: it creates the file and puts it in WAL mode, which read-only
    // connections cannot do.
    let writes = open(options, SQLITE_WRITERS, false).await?;
    let reads = open(options, options.max_connections, true).await?;
    Ok(Database { reads, writes })
}

async fn open(
    options: &DatabaseOptions,
    max_connections: u32,
    read_only: bool,
) -> Result<DatabaseConnection> {
    let mut connect = ConnectOptions::new(options.url.clone());
    connect
        .max_connections(max_connections)
        .connect_timeout(options.connect_timeout)
        .acquire_timeout(options.connect_timeout)
        // Statements carry token hashes as parameters: they never go to the log.
        .sqlx_logging(false)
        // A SQLite connection is a file handle in this process: it does not go stale the
        // way a network connection does, so no ping (a round trip to its worker thread)
        // before each use.
        .test_before_acquire(!DbBackend::Sqlite.is_prefix_of(&options.url))
        .map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .create_if_missing(!read_only)
                .read_only(read_only)
        });
    sea_orm::Database::connect(connect)
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
