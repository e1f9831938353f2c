//! Opening the database. SQLite and PostgreSQL share one schema, which the server's
//! start-up migrates (the domain carries no schema tooling).
//!
//! Reads and writes take different connections ([`Database`]): SQLite lets one connection
//! write at a time, so on SQLite every write goes through one connection of its own and
//! queues for it, instead of several pooled connections fighting over the file's lock.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
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

/// The writer checkpoints itself only once the log holds this many pages (64 MiB of
/// 4 KiB pages), should the checkpoints of [`Checkpoints`] fall behind (a reader holding
/// an old snapshot) or stop.
const SQLITE_WRITER_CHECKPOINT_PAGES: u32 = 16_384;

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
    /// On a SQLite file, the task that checkpoints the log; it ends with the last clone.
    _checkpoints: Option<std::sync::Arc<Checkpoints>>,
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
    /// How often a connection of its own copies the SQLite write-ahead log into the
    /// database file (a passive checkpoint: it never holds the write lock), so that the
    /// writer does not: a checkpoint on commit writes and syncs both
    /// files, which held the writer, and every write queued behind it, for 10 ms and more.
    pub sqlite_checkpoint_interval: Duration,
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
        let pool = open(options, options.max_connections, Role::ReadWrite).await?;
        return Ok(Database {
            reads: pool.clone(),
            writes: pool,
            _checkpoints: None,
        });
    }
    // The writer first: it creates the file and puts it in WAL mode, which read-only
    // connections cannot do.
    let writes = open(options, SQLITE_WRITERS, Role::Writer).await?;
    let reads = open(options, options.max_connections, Role::ReadOnly).await?;
    let checkpoints = Checkpoints::start(
        open(options, 1, Role::ReadWrite).await?,
        options.sqlite_checkpoint_interval,
    );
    Ok(Database {
        reads,
        writes,
        _checkpoints: Some(std::sync::Arc::new(checkpoints)),
    })
}

/// What a pool of SQLite connections is for (PostgreSQL ignores it).
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// Read-only connections.
    ReadOnly,
    /// The writer: it leaves checkpoints to [`Checkpoints`].
    Writer,
    /// Connections that read and write: PostgreSQL's pool, an in-memory SQLite database,
    /// and the connection of [`Checkpoints`].
    ReadWrite,
}

/// Passive checkpoints of a SQLite log every
/// [`DatabaseOptions::sqlite_checkpoint_interval`], on a connection of their own, off the
/// writer's path.
#[derive(Debug)]
struct Checkpoints(tokio::task::JoinHandle<()>);

impl Checkpoints {
    fn start(connection: DatabaseConnection, interval: Duration) -> Self {
        Self(tokio::spawn(async move {
            // The configuration refuses zero, for which `interval` would panic.
            let mut every = tokio::time::interval(interval.max(Duration::from_millis(1)));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Warned once until a checkpoint succeeds again, not on every tick.
            let mut failing = false;
            loop {
                every.tick().await;
                match connection
                    .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                    .await
                {
                    Ok(_) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "checkpointing the SQLite log failed");
                    }
                    Err(_) => {}
                }
            }
        }))
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn open(
    options: &DatabaseOptions,
    max_connections: u32,
    role: Role,
) -> Result<DatabaseConnection> {
    let read_only = role == Role::ReadOnly;
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
            let o = if role == Role::Writer {
                o.pragma(
                    "wal_autocheckpoint",
                    SQLITE_WRITER_CHECKPOINT_PAGES.to_string(),
                )
            } else {
                o
            };
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

/// A kind of write that is written in groups ([`GroupCommit`]): all the writes queued
/// at one moment, in one transaction and as few statements as the kind can manage.
pub(crate) trait GroupedWrite: Send + Sized + 'static {
    type Output: Send + 'static;

    /// Writes `group` in `txn` and answers each of its writes, in order. Whatever it
    /// answers "no" to (an outcome in `Output`, not an error) must leave nothing
    /// half-done: only an error rolls the group back, and it fails all of it.
    fn write_group(
        group: Vec<Self>,
        txn: &DatabaseTransaction,
    ) -> impl Future<Output = Result<Vec<Self::Output>>> + Send + '_;
}

/// Group commit: writes of one kind queue here, and one task writes whatever is queued
/// each time it is free (at most `max_group` writes) in one transaction of the writer,
/// then answers each. At a trickle that is one write per transaction and no added wait;
/// under load the group shares its statements, its `BEGIN` and its `COMMIT`, and the
/// writer is never held by a request task waiting for its turn on a busy thread.
///
/// A write's answer comes after its group's commit. When the group fails (a statement,
/// the commit), it is rolled back and every write of it fails (503 when the database is
/// unreachable).
pub(crate) struct GroupCommit<W: GroupedWrite> {
    queue: tokio::sync::mpsc::Sender<Queued<W>>,
}

struct Queued<W: GroupedWrite> {
    write: W,
    answer: Answer<W::Output>,
}

type Answer<O> = tokio::sync::oneshot::Sender<Result<O>>;

impl<W: GroupedWrite> GroupCommit<W> {
    /// Starts the task that writes the groups, on the current Tokio runtime; it ends once
    /// this value is dropped. `queued` bounds the writes waiting: beyond it, callers wait
    /// to queue.
    pub(crate) fn start(writer: DatabaseConnection, max_group: usize, queued: usize) -> Self {
        let (queue, waiting) = tokio::sync::mpsc::channel(queued.max(1));
        tokio::spawn(write_groups(writer, waiting, max_group.max(1)));
        Self { queue }
    }

    /// Queues `write` and answers once its group is committed.
    pub(crate) async fn write(&self, write: W) -> Result<W::Output> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.queue
            .send(Queued { write, answer })
            .await
            .map_err(|_| Error::internal("the group commit task has stopped"))?;
        answered
            .await
            .map_err(|_| Error::internal("the group commit task dropped a write"))?
    }
}

async fn write_groups<W: GroupedWrite>(
    writer: DatabaseConnection,
    mut waiting: tokio::sync::mpsc::Receiver<Queued<W>>,
    max_group: usize,
) {
    let mut queued = Vec::with_capacity(max_group);
    while waiting.recv_many(&mut queued, max_group).await > 0 {
        // A caller that stopped waiting (its client went away) is not written for: before,
        // dropping its transaction rolled it back, and its retry finds nothing changed.
        let (group, answers): (Vec<W>, Vec<Answer<W::Output>>) = queued
            .drain(..)
            .filter(|q| !q.answer.is_closed())
            .map(|q| (q.write, q.answer))
            .unzip();
        if group.is_empty() {
            continue;
        }
        // A panic fails its group, not the task, which goes on with the next group.
        let written = AssertUnwindSafe(write_group(&writer, group))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Error::internal("a group write panicked")));
        match written {
            Ok(outputs) if outputs.len() == answers.len() => {
                for (output, answer) in outputs.into_iter().zip(answers) {
                    // A caller that stopped waiting (its client went away) is no error.
                    let _ = answer.send(Ok(output));
                }
            }
            Ok(_) => fail_group(Error::internal("a group was answered in part"), answers),
            Err(e) => fail_group(e, answers),
        }
    }
}

async fn write_group<W: GroupedWrite>(
    writer: &DatabaseConnection,
    group: Vec<W>,
) -> Result<Vec<W::Output>> {
    let txn = begin_write(writer).await?;
    // On an error, dropping the transaction rolls it back.
    let outputs = W::write_group(group, &txn).await?;
    txn.commit().await?;
    Ok(outputs)
}

/// Answers the first write of a failed group with `error`, and the others with an error
/// of the same kind.
fn fail_group<O>(error: Error, answers: Vec<Answer<O>>) {
    let sibling = || match &error {
        Error::Unavailable { reason, .. } => Error::Unavailable {
            reason,
            source: None,
        },
        _ => Error::internal("another write of the same group failed"),
    };
    let mut answers = answers.into_iter();
    let first = answers.next();
    for answer in answers {
        let _ = answer.send(Err(sibling()));
    }
    if let Some(answer) = first {
        let _ = answer.send(Err(error));
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    /// Inserts its number into `t`, whose numbers are unique.
    struct Insert(i64);

    impl GroupedWrite for Insert {
        type Output = i64;

        async fn write_group(group: Vec<Self>, txn: &DatabaseTransaction) -> Result<Vec<i64>> {
            let mut numbers = Vec::new();
            for Insert(n) in group {
                txn.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "INSERT INTO t (n) VALUES (?)",
                    [n.into()],
                ))
                .await?;
                numbers.push(n);
            }
            Ok(numbers)
        }
    }

    async fn table() -> DatabaseConnection {
        // One connection: an in-memory database is one per connection.
        let mut options = ConnectOptions::new("sqlite::memory:");
        options.max_connections(1);
        let db = sea_orm::Database::connect(options).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        db
    }

    async fn numbers(db: &DatabaseConnection) -> Vec<i64> {
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT n FROM t ORDER BY n",
            ))
            .await
            .unwrap();
        rows.iter().map(|r| r.try_get("", "n").unwrap()).collect()
    }

    // On this single-threaded runtime the writes below are all queued before the group
    // commit task first runs, so they form one group.

    #[tokio::test]
    async fn writes_queued_together_commit_together() {
        let db = table().await;
        let group = GroupCommit::start(db.clone(), 64, 64);
        let (a, b, c) = tokio::join!(
            group.write(Insert(1)),
            group.write(Insert(2)),
            group.write(Insert(3))
        );
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (1, 2, 3));
        assert_eq!(numbers(&db).await, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_failed_write_fails_its_whole_group_and_leaves_nothing_written() {
        let db = table().await;
        let group = GroupCommit::start(db.clone(), 64, 64);
        group.write(Insert(7)).await.unwrap();
        let (before, failing, after) = tokio::join!(
            group.write(Insert(1)),
            group.write(Insert(7)),
            group.write(Insert(2))
        );
        assert!(before.is_err() && failing.is_err() && after.is_err());
        assert_eq!(numbers(&db).await, [7], "the group is rolled back");
        assert_eq!(group.write(Insert(2)).await.unwrap(), 2, "the next group");
        assert_eq!(numbers(&db).await, [2, 7]);
    }

    #[tokio::test]
    async fn a_group_is_at_most_max_group_writes() {
        let db = table().await;
        let group = GroupCommit::start(db.clone(), 2, 64);
        // The failing write is third: it shares its group with the fourth only.
        let (first, second, failing, fourth) = tokio::join!(
            group.write(Insert(1)),
            group.write(Insert(2)),
            group.write(Insert(1)),
            group.write(Insert(4))
        );
        assert!(first.is_ok() && second.is_ok());
        assert!(failing.is_err() && fourth.is_err());
        assert_eq!(numbers(&db).await, [1, 2]);
    }
}
