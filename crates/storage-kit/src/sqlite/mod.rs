//! One SQLite file in WAL mode, shared by every store of the process that opens it. rusqlite is
//! synchronous, so every call runs on the blocking pool: writes on one writer connection after
//! a turn at the file's [`gate`] (SQLite admits one writer at a time anyway, and queuing here
//! avoids `SQLITE_BUSY` churn), reads on a small pool of reader connections that WAL lets run
//! beside it.

mod batch;
pub mod gate;
mod readers;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use self::batch::WriteStats;
use self::batch::{Queue, Write};
pub use self::gate::Lane;
use self::gate::WriteGate;
use self::readers::Readers;

/// Prepared statements kept per connection: more than the distinct statements the stores of a
/// file run (they share its write connection).
const STATEMENT_CACHE: usize = 160;

/// Page cache per connection, in KiB.
const CACHE_KIB: i64 = 1024;

/// What can go wrong below a store's own logic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file or its folder could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// SQLite refused: opening, setting up, beginning or committing.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task that ran the call panicked or was cancelled.
    #[error("SQLite task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The write succeeded but the transaction it shared with others did not commit.
    #[error("the transaction did not commit: {0}")]
    NotCommitted(std::sync::Arc<rusqlite::Error>),
    /// The write panicked (a bug); its changes were rolled back.
    #[error("a write panicked: {0}")]
    Panicked(String),
    /// The write was dropped unanswered: the runtime shut down, or a bug outside any write.
    #[error("the write was dropped before it finished")]
    Dropped,
}

/// How a store uses its file; what differs between stores on purpose.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Reader connections beside the writer.
    pub readers: usize,
    /// The gate's queue this store's writes wait in.
    pub lane: Lane,
}

/// A store's connections to one database file. Cloning shares them.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Shared by every store of the file (see [`WriteGate::writer`]).
    writer: Arc<Mutex<Connection>>,
    /// Writes waiting for the writer's next transaction.
    queue: Queue,
    /// Taken before `writer`: every writer of this file in this process queues here.
    gate: Arc<WriteGate>,
    lane: Lane,
    readers: Readers,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Opens one connection with the pragmas every store relies on.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    connect_with(path, "NORMAL")
}

/// [`connect`] with the given `synchronous` setting.
fn connect_with(path: &Path, synchronous: &str) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(gate::wait_for_lock))?;
    // Before the switch to WAL: on a new file that switch is a rollback-journal transaction,
    // which at the default (FULL) syncs the journal and the folder more often than NORMAL's
    // guarantees need, a few ms of a cold start.
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // SQLite's default is 2 MiB per connection, and a file here has about ten (two stores, each
    // a writer, readers and a checkpointer). Each transaction's pages fit many times over, and
    // a connection's cache is emptied anyway whenever another connection has written.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // Per connection, and only tables that declare foreign keys are checked: on for every
    // store, so no connection to a shared file can break another store's references.
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Stores run the same statements over and over: keep them compiled. Without a stable plan
    // SQLite recompiles any statement with a bound LIMIT each time it runs.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

/// Locks a connection, whatever a panic left behind. A panic while a connection was held
/// unwound through rusqlite's `Transaction`, whose drop rolls back, so the connection is fine;
/// refusing it would take the store down for good over one failed call. The rollback is
/// repeated in case the one during the unwind failed.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    match conn.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            conn.clear_poison();
            recovered(poisoned.into_inner())
        }
    }
}

fn recovered(guard: MutexGuard<'_, Connection>) -> MutexGuard<'_, Connection> {
    if !guard.is_autocommit()
        && let Err(e) = guard.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %e, "rolling back after a panic");
    }
    guard
}

/// Runs `f` in a transaction that commits when it succeeds (and rolls back when dropped).
fn transact<T, E: From<Error>>(
    conn: &mut Connection,
    behavior: TransactionBehavior,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let tx = conn
        .transaction_with_behavior(behavior)
        .map_err(Error::from)?;
    let out = f(&tx)?;
    tx.commit().map_err(Error::from)?;
    Ok(out)
}

impl Database {
    /// Opens (creating if needed, for the owner only, with its folder) the file at `path`. The
    /// writer connection runs `prepare` (the store's schema) before anything else uses it.
    ///
    /// Checkpoints are the file's gate's job (see [`gate::WriteGate::keep_wal_short`]), not
    /// SQLite's, which would run one, fsync included, inside whichever commit crossed its
    /// threshold; so this needs a Tokio runtime.
    pub async fn open(
        path: impl Into<PathBuf>,
        options: Options,
        prepare: impl FnOnce(&mut Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<Database, Error> {
        let path = path.into();
        let db = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::private_fs::create_dir_all(dir).map_err(|source| Error::Create {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            // The database file decides the permissions of its `-wal` and `-shm`.
            crate::private_fs::ensure_file(&path).map_err(|source| Error::Create {
                path: path.clone(),
                source,
            })?;
            // An empty file is a new database, with nothing in it to lose: the switch to WAL and
            // the schema are written without waiting for the disk (five fsyncs, 2-8 ms of a
            // first start here). A process crash cannot damage it (SQLite hands every write to
            // the OS before going on); a power loss before the first checkpoint could, and the
            // file would then have held no data. Syncs resume before anything else is written.
            let new = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
            let gate = gate::for_file(&path);
            let writer = gate.writer(|| {
                let conn = connect_with(&path, if new { "OFF" } else { "NORMAL" })?;
                // Each write in a group commit has its own savepoint, whose journal SQLite
                // keeps in memory only up to 64 KiB and then moves to a temporary file: under
                // load that was a file created, written and deleted per transaction. In memory
                // it is bounded by one transaction's pages. Readers keep the default, so a big
                // sort still spills to disk.
                conn.pragma_update(None, "temp_store", "MEMORY")?;
                Ok(conn)
            })?;
            {
                let mut conn = lock(&writer);
                let prepared = prepare(&mut conn);
                if new {
                    conn.pragma_update(None, "synchronous", "NORMAL")?;
                }
                prepared?;
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            }
            let readers = Readers::new(path.clone(), options.readers);
            let db = Database {
                inner: Arc::new(Inner {
                    gate,
                    path,
                    writer,
                    queue: Queue::default(),
                    lane: options.lane,
                    readers,
                }),
            };
            Ok::<_, Error>(db)
        })
        .await??;
        let path = db.inner.path.clone();
        db.inner.gate.keep_wal_short(move || connect(&path));
        Ok(db)
    }

    /// The file's path as given to [`Database::open`].
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` inside an immediate write transaction, after this store's turn at the gate,
    /// and answers once that transaction has committed. Writes that arrive together share a
    /// transaction (group commit), each in a savepoint: when `f` fails, its changes alone are
    /// rolled back.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        if self.inner.queue.push(Box::new(Write { f, reply, span })) {
            // A task of its own, so the queue is drained even if this caller goes away.
            tokio::spawn(drain(self.inner.clone()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(E::from(Error::Dropped)))
    }

    /// Writes and transactions so far.
    pub fn write_stats(&self) -> WriteStats {
        self.inner.queue.stats()
    }

    /// Runs `f` on a reader connection, outside any transaction.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.on_reader(move |conn| f(conn)).await
    }

    /// Runs `f`, a lookup (rows found by key through an index, a few of them), on a reader
    /// connection, on the calling thread if a connection is idle right now and as
    /// [`Database::read`] otherwise. Such a read takes tens of microseconds, less than handing
    /// it to the blocking pool and waking the task again; a read that may scan belongs in
    /// [`Database::read`], where it holds up no other task.
    pub async fn lookup<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        match self.inner.readers.take_idle() {
            Some((conn, _permit)) => f(&conn),
            None => self.read(f).await,
        }
    }

    /// Runs `f` on a reader connection inside a read transaction (`BEGIN DEFERRED`), so every
    /// query in it sees the same snapshot.
    pub async fn read_in_transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        self.on_reader(move |conn| transact(conn, TransactionBehavior::Deferred, f))
            .await
    }

    async fn on_reader<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let permit = self.inner.readers.permit().await;
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // Given back after the connection, inside the task: a caller that leaves early
            // does not let another reader in while this one still reads.
            let _permit = permit;
            let mut conn = inner.readers.take().map_err(Error::from)?;
            f(&mut conn)
        })
        .await
        .map_err(Error::from)?
    }
}

/// Takes turns at the gate until no write is queued.
async fn drain(inner: Arc<Inner>) {
    loop {
        let turn = inner.gate.turn(inner.lane).await;
        let batch = inner.clone();
        let ran = tokio::task::spawn_blocking(move || {
            // Held by the blocking task, so the gate is free again when the writes are done.
            let _turn = turn;
            batch
                .queue
                .run(&mut lock(&batch.writer), &batch.gate, batch.lane);
        })
        .await;
        if let Err(e) = ran {
            // Writes' own panics are caught; the ones it held are answered with `Dropped`.
            tracing::error!(error = %e, "BUG: the SQLite writer failed outside any write");
        }
        if !inner.queue.keep_draining() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of table `t`, in order.
    async fn values(db: &Database) -> Vec<i64> {
        db.read(|c| {
            let mut stmt = c.prepare("SELECT v FROM t ORDER BY v")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>().map_err(Error::from)
        })
        .await
        .unwrap()
    }

    fn options() -> Options {
        Options {
            readers: 2,
            lane: Lane::First,
        }
    }

    #[tokio::test]
    async fn opens_a_private_file_in_a_new_folder_and_reads_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/app.db");
        let db = Database::open(&path, options(), |c| {
            c.execute_batch("CREATE TABLE t (v INTEGER)")
        })
        .await
        .unwrap();
        db.write(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])
                .map_err(Error::from)
        })
        .await
        .unwrap();
        let n: i64 = db
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                    .map_err(Error::from)
            })
            .await
            .unwrap();
        assert_eq!(n, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("data")), 0o700);
        }
    }

    #[tokio::test]
    async fn lookups_run_in_place_on_an_idle_connection_and_wait_for_a_busy_one() {
        let dir = tempfile::tempdir().unwrap();
        let one_reader = Options {
            readers: 1,
            lane: Lane::First,
        };
        let db = Database::open(dir.path().join("a.db"), one_reader, |c| {
            c.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7)")
        })
        .await
        .unwrap();
        let here = std::thread::current().id();
        async fn thread_of(db: &Database) -> Result<(i64, std::thread::ThreadId), Error> {
            db.lookup(|c| {
                let v: i64 = c.query_row("SELECT v FROM t", [], |r| r.get(0))?;
                Ok((v, std::thread::current().id()))
            })
            .await
        }
        // No connection is open yet: the first is opened on the blocking pool.
        let (v, first) = thread_of(&db).await.unwrap();
        assert_eq!(v, 7);
        assert_ne!(first, here);
        // Now it is idle, and the lookup runs where it was called.
        assert_eq!(thread_of(&db).await.unwrap(), (7, here));

        // While the only connection is busy, a lookup waits for it rather than opening another.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (held, busy) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn({
            let db = db.clone();
            async move {
                db.read(move |_| {
                    let _ = held.send(());
                    let _ = hold.recv();
                    Ok::<_, Error>(())
                })
                .await
            }
        });
        busy.await.unwrap();
        let waiting = tokio::spawn({
            let db = db.clone();
            async move { thread_of(&db).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        release.send(()).unwrap();
        reader.await.unwrap().unwrap();
        let (v, _) = waiting.await.unwrap().unwrap();
        assert_eq!(v, 7);
    }

    #[tokio::test]
    async fn a_failed_write_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("a.db"), options(), |c| {
            c.execute_batch("CREATE TABLE t (v INTEGER)")
        })
        .await
        .unwrap();
        let err = db
            .write(|tx| {
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                Err::<(), _>(Error::Sqlite(rusqlite::Error::InvalidQuery))
            })
            .await;
        assert!(err.is_err());
        let n: i64 = db
            .read_in_transaction(|tx| {
                tx.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                    .map_err(Error::from)
            })
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn a_panic_inside_a_call_leaves_the_connections_usable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(
            dir.path().join("a.db"),
            Options {
                readers: 1,
                lane: Lane::Background,
            },
            |c| c.execute_batch("CREATE TABLE t (v INTEGER)"),
        )
        .await
        .unwrap();
        let err = db
            .write(|tx| -> Result<(), Error> {
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("a bug in a store");
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Panicked(ref m) if m == "a bug in a store"),
            "{err}"
        );
        let err = db
            .read_in_transaction(|_| -> Result<(), Error> { panic!("a bug in a read") })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Task(_)), "{err}");

        db.write(|tx| {
            tx.execute("INSERT INTO t VALUES (2)", [])
                .map_err(Error::from)
        })
        .await
        .unwrap();
        assert_eq!(values(&db).await, [2], "the panicked write was rolled back");
    }

    /// Writes queued while the gate is taken share transactions, each is answered with its
    /// own result, and a failing one takes none of its neighbours down with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_arrive_together_share_a_transaction_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("a.db"), options(), |c| {
            c.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
        })
        .await
        .unwrap();
        let held = db.inner.gate.turn(Lane::First).await;
        let writes: Vec<_> = (0..40)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |tx| {
                        tx.execute("INSERT INTO t VALUES (?1)", [i])?;
                        if i % 10 == 3 {
                            // Changed, then failed: the insert above must not survive.
                            return Err(Error::Sqlite(rusqlite::Error::InvalidQuery));
                        }
                        Ok(i)
                    })
                    .await
                })
            })
            .collect();
        while db.inner.queue.len() < 40 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for (i, w) in writes.into_iter().enumerate() {
            match w.await.unwrap() {
                Ok(v) => assert_eq!(v, i as i64),
                Err(e) => assert!(i % 10 == 3, "write {i}: {e}"),
            }
        }
        let expected: Vec<i64> = (0..40).filter(|i| i % 10 != 3).collect();
        assert_eq!(values(&db).await, expected);
        let stats = db.write_stats();
        assert_eq!(stats.writes, 40);
        assert!(
            stats.commits < 20,
            "{} transactions for 40 queued writes",
            stats.commits
        );
    }

    /// The first write of a transaction has no savepoint: when it fails, or panics, after
    /// changing something, the transaction is undone whole and the writes behind it still run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_first_write_is_undone_and_the_next_ones_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("a.db"), options(), |c| {
            c.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
        })
        .await
        .unwrap();
        let held = db.inner.gate.turn(Lane::First).await;
        let mut writes = Vec::new();
        for i in 1..=3_i64 {
            let db2 = db.clone();
            writes.push(tokio::spawn(async move {
                db2.write(move |tx| {
                    tx.execute("INSERT INTO t VALUES (?1)", [i])?;
                    match i {
                        1 => Err(Error::Sqlite(rusqlite::Error::InvalidQuery)),
                        2 => panic!("write 2 gives up"),
                        _ => Ok(i),
                    }
                })
                .await
            }));
            // Queued in this order, so each failing write is the first of a transaction.
            while db.inner.queue.len() < i as usize {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        let mut out = Vec::new();
        for w in writes {
            out.push(w.await.unwrap().ok());
        }
        assert_eq!(out, vec![None, None, Some(3)]);
        assert_eq!(values(&db).await, vec![3]);
        assert_eq!(
            db.write_stats(),
            WriteStats {
                writes: 3,
                commits: 1
            }
        );
    }

    #[tokio::test]
    async fn stores_on_one_file_share_its_gate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let a = Database::open(&path, options(), |_| Ok(())).await.unwrap();
        let b = Database::open(
            dir.path().join(".").join("shared.db"),
            options(),
            |_| Ok(()),
        )
        .await
        .unwrap();
        assert!(Arc::ptr_eq(&a.inner.gate, &b.inner.gate));
    }
}
