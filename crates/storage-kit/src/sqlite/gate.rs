//! One queue for the write lock of each SQLite file within this process.
//!
//! Several stores can write to the same file, each through its own connection (the
//! application's store and the embedded executor's run store do). SQLite has no queue for its write lock: a writer that finds it
//! taken sleeps and tries again, so under load a short API write could lose the race to the
//! executor's commits many times over and wait tens of milliseconds, while the lock sat free
//! during the sleeps. Taking a turn here first makes writers of one process never meet inside
//! SQLite; the busy handler below remains for other processes (command-line tools, say) writing
//! to the same file.
//!
//! Two lanes: the application's writes go before the executor's bookkeeping, so a request
//! waits for at most the write in progress, however much background work is queued. Within a
//! lane, turns go in arrival order.
//!
//! The gate also keeps the file's write-ahead log short (see [`WriteGate::keep_wal_short`]).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

/// When the log is copied back into the database file, and when it is started over or cut back.
#[derive(Debug, Clone, Copy)]
struct Limits {
    every: Duration,
    /// Log size above which writers are held back until the log is started over.
    restart_above_pages: i64,
    /// Log file size above which it is cut back once nothing is being written.
    truncate_idle_above_bytes: u64,
}

const LIMITS: Limits = Limits {
    every: Duration::from_millis(250),
    // 32 MiB of 4 KiB pages: under the heaviest load, a restart at nearly every tick. Each
    // holds writers back for a few milliseconds to tens (the checkpoint's fsyncs), yet on a
    // virtual disk a log left to grow cost the API far more: every page of a growing file is a
    // new page in the kernel's cache and a new block on the disk, where a restarted log
    // overwrites the same few megabytes (system and I/O-wait time about a fifth lower).
    // The create benchmark on the disk (2 cores, 500 tickets/s, AI instant, worst p99 of five
    // runs): 2 GiB 16-18 ms, 512 MiB 14 ms, 128 MiB 8.7 ms, 32 MiB 5.2-6.0 ms, 8 MiB 5.5 ms.
    // The burst was no slower.
    restart_above_pages: 8_192,
    // SQLite reuses the file from its start; cutting it back while writes go on would free and
    // allocate disk blocks under the write lock (hundreds of milliseconds with `discard`).
    truncate_idle_above_bytes: 64 * 1024 * 1024,
};

/// Which queue a writer waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Application data: requests wait on these.
    First,
    /// The executor's queue and run state: nobody waits on a single one.
    Background,
}

/// The writers of one database file.
#[derive(Debug, Default)]
pub struct WriteGate {
    state: Mutex<State>,
    upkeep: AtomicBool,
    /// The one write connection of the file, shared by its stores (see [`WriteGate::writer`]).
    writer: Mutex<Option<Arc<Mutex<Connection>>>>,
}

#[derive(Debug, Default)]
struct State {
    taken: bool,
    first: VecDeque<oneshot::Sender<()>>,
    background: VecDeque<oneshot::Sender<()>>,
}

/// The right to write; the next writer's turn starts when it is dropped.
#[derive(Debug)]
pub struct Turn {
    gate: Arc<WriteGate>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.gate.hand_over();
    }
}

impl WriteGate {
    /// Waits for this writer's turn. Dropping the future while waiting gives the turn up.
    pub async fn turn(self: &Arc<Self>, lane: Lane) -> Turn {
        let rx = {
            let mut state = self.lock();
            if !state.taken {
                state.taken = true;
                return Turn { gate: self.clone() };
            }
            let (tx, rx) = oneshot::channel();
            match lane {
                Lane::First => state.first.push_back(tx),
                Lane::Background => state.background.push_back(tx),
            }
            rx
        };
        let mut waiting = Waiting {
            rx: Some(rx),
            gate: self.clone(),
        };
        let granted = match waiting.rx.as_mut() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        waiting.rx = None;
        if !granted {
            // Unreachable: senders are only dropped after a successful send. Take the turn
            // anyway rather than deadlock.
            tracing::error!("BUG: write gate waiter dropped without a turn");
        }
        Turn { gate: self.clone() }
    }

    /// Checkpoints the file every 250 ms on a connection of its own (opened with `open` at the
    /// first tick, off the start-up path), until no store uses the file any more. Only the
    /// first call per file starts it.
    ///
    /// A passive checkpoint never waits for, nor blocks, readers and writers, and does the
    /// copying. But SQLite starts the log over only when a write begins while no reader still
    /// reads an older part of it, and under steady load there always is one: the log grew to
    /// 5 GB during a burst of 10,000 tickets. So past a limit the checkpoint is repeated in a
    /// background turn at the gate (no writer of this process in between) as `RESTART`, which
    /// waits for those readers to finish; the next write then starts the log over. A log file
    /// left large is cut back once writes stop.
    pub fn keep_wal_short(
        self: &Arc<Self>,
        open: impl FnOnce() -> rusqlite::Result<Connection> + Send + 'static,
    ) {
        if self.upkeep.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(upkeep(Arc::downgrade(self), open, LIMITS));
    }

    /// The file's write connection, opened with `open` by the first store to ask. Every store
    /// of the file writes through it: SQLite drops a connection's page cache whenever another
    /// connection has written to the file, so with one writer per store each store's writes
    /// re-read from the OS the pages the other's had just written.
    pub(crate) fn writer(
        &self,
        open: impl FnOnce() -> rusqlite::Result<Connection>,
    ) -> rusqlite::Result<Arc<Mutex<Connection>>> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = writer.as_ref() {
            return Ok(conn.clone());
        }
        let conn = Arc::new(Mutex::new(open()?));
        *writer = Some(conn.clone());
        Ok(conn)
    }

    /// An application writer is waiting for its turn.
    pub(crate) fn first_lane_waiting(&self) -> bool {
        !self.lock().first.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the turn to the next live waiter, first lane first, or frees the gate.
    fn hand_over(&self) {
        let mut state = self.lock();
        loop {
            let next = match state.first.pop_front() {
                Some(tx) => Some(tx),
                None => state.background.pop_front(),
            };
            match next {
                // A waiter that gave up has dropped its receiver: try the next one.
                Some(tx) => {
                    if tx.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    state.taken = false;
                    return;
                }
            }
        }
    }
}

/// A writer in the queue. If it is dropped after its turn came but before it saw it, the turn
/// goes on to the next writer instead of being lost.
struct Waiting {
    rx: Option<oneshot::Receiver<()>>,
    gate: Arc<WriteGate>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.hand_over();
            }
        }
    }
}

async fn upkeep(
    gate: Weak<WriteGate>,
    open: impl FnOnce() -> rusqlite::Result<Connection> + Send + 'static,
    limits: Limits,
) {
    // Not at once: at start-up the stores are still opening and the server not yet listening.
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + limits.every, limits.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::time::sleep(limits.every).await;
    let conn = match tokio::task::spawn_blocking(open).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot open a connection for checkpoints; the write-ahead log is left to grow");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "opening a connection for checkpoints failed");
            return;
        }
    };
    let wal = conn.path().map(|db| PathBuf::from(format!("{db}-wal")));
    let conn = Arc::new(Mutex::new(conn));
    let mut last_log = -1;
    loop {
        tick.tick().await;
        let Some(gate) = gate.upgrade() else {
            return;
        };
        let log = match checkpoint(&conn, "PASSIVE", None).await {
            Ok((log, _)) => log,
            Err(e) => {
                // Busy: another process's checkpoint, say. Next tick.
                tracing::debug!(error = %e, "SQLite checkpoint skipped");
                continue;
            }
        };
        let idle = log == last_log;
        last_log = log;
        let mode = if log > limits.restart_above_pages {
            "RESTART"
        } else if idle
            && wal
                .as_ref()
                .and_then(|w| std::fs::metadata(w).ok())
                .is_some_and(|m| m.len() > limits.truncate_idle_above_bytes)
        {
            "TRUNCATE"
        } else {
            continue;
        };
        let turn = gate.turn(Lane::Background).await;
        if let Err(e) = checkpoint(&conn, mode, Some(turn)).await {
            tracing::debug!(error = %e, mode, "SQLite log restart skipped");
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`; the log's size and how much of it is now in the database
/// file, in pages.
async fn checkpoint(
    conn: &Arc<Mutex<Connection>>,
    mode: &'static str,
    turn: Option<Turn>,
) -> Result<(i64, i64), String> {
    let conn = conn.clone();
    let done = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    match done {
        (0, log, copied) => Ok((log, copied)),
        _ => Err("busy".to_owned()),
    }
}

static GATES: LazyLock<Mutex<HashMap<PathBuf, Weak<WriteGate>>>> = LazyLock::new(Default::default);

/// The gate of the database file at `path`, shared by every store of this process that opens
/// the same file (by its canonical path, so `./data/app.db` and an absolute path meet).
pub fn for_file(path: &Path) -> Arc<WriteGate> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut gates = GATES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(gate) = gates.get(&key).and_then(Weak::upgrade) {
        return gate;
    }
    gates.retain(|_, g| g.strong_count() > 0);
    let gate = Arc::new(WriteGate::default());
    gates.insert(key, Arc::downgrade(&gate));
    gate
}

/// SQLite busy handler, for when another process holds the write lock: retries every 50 µs at
/// first, then every millisecond, for about five seconds. SQLite's own busy timeout sleeps 1, 2,
/// 5, 10 … ms between tries and overshoots transactions that take a fraction of a millisecond.
pub fn wait_for_lock(attempt: i32) -> bool {
    let pause = match attempt {
        0..=39 => Duration::from_micros(50),
        40..=5000 => Duration::from_millis(1),
        _ => return false,
    };
    std::thread::sleep(pause);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, b"").unwrap();
        path
    }

    #[test]
    fn one_gate_per_file_whatever_the_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let a = for_file(&file(&dir, "app.db"));
        let b = for_file(&dir.path().join(".").join("app.db"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &for_file(&file(&dir, "other.db"))));
    }

    /// Queues `lanes` behind a held turn (one thread: a spawned task queues when the test
    /// yields), frees the gate, and returns the order in which the writers got their turns.
    async fn order_of(lanes: &[Lane]) -> Vec<usize> {
        let gate = Arc::new(WriteGate::default());
        let held = gate.turn(Lane::First).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut writers = Vec::new();
        for (i, lane) in lanes.iter().copied().enumerate() {
            let (gate, order) = (gate.clone(), order.clone());
            writers.push(tokio::spawn(async move {
                let _turn = gate.turn(lane).await;
                order.lock().unwrap().push(i);
                tokio::task::yield_now().await;
            }));
            tokio::task::yield_now().await;
        }
        assert!(
            order.lock().unwrap().is_empty(),
            "a writer got in while the turn was held"
        );
        drop(held);
        for w in writers {
            w.await.unwrap();
        }
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn turns_go_in_arrival_order_within_a_lane() {
        assert_eq!(order_of(&[Lane::Background; 4]).await, [0, 1, 2, 3]);
        assert_eq!(order_of(&[Lane::First; 4]).await, [0, 1, 2, 3]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn application_writes_go_before_queued_background_writes() {
        use Lane::{Background as B, First as F};
        assert_eq!(order_of(&[B, B, F, B, F]).await, [2, 4, 0, 1, 3]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_writer_that_gives_up_does_not_keep_the_turn() {
        let gate = Arc::new(WriteGate::default());
        let held = gate.turn(Lane::First).await;
        // Gives up while queued.
        let quitter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.turn(Lane::First).await }
        });
        tokio::task::yield_now().await;
        quitter.abort();
        // Its turn comes and it is gone before it sees it.
        let late = {
            let gate = gate.clone();
            let mut fut = Box::pin(async move { gate.turn(Lane::Background).await });
            assert!(futures_poll_once(fut.as_mut()).await.is_none());
            fut
        };
        drop(held);
        drop(late);
        let next = tokio::time::timeout(Duration::from_secs(5), gate.turn(Lane::Background)).await;
        assert!(next.is_ok(), "the gate stayed taken");
    }

    #[tokio::test]
    async fn a_large_log_is_cut_back_once_writes_stop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wal.db");
        let open = |db: &Path| {
            let mut conn = Connection::open(db).unwrap();
            conn.busy_handler(Some(wait_for_lock)).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            conn
        };
        let writer = open(&db);
        writer
            .execute_batch(
                "CREATE TABLE t (v BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                 INSERT INTO t SELECT zeroblob(4000) FROM n;",
            )
            .unwrap();
        let wal = dir.path().join("wal.db-wal");
        let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(size() > 1_000_000, "the log holds the writes: {}", size());

        let gate = for_file(&db);
        let limits = Limits {
            every: Duration::from_millis(10),
            restart_above_pages: i64::MAX,
            truncate_idle_above_bytes: 100_000,
        };
        let path = db.clone();
        tokio::spawn(upkeep(
            Arc::downgrade(&gate),
            move || Ok(open(&path)),
            limits,
        ));
        let started = std::time::Instant::now();
        while size() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the log stayed at {}",
                size()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let rows: i64 = open(&db)
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 500);
    }

    /// Polls a future once; its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
