//! Group commit: the writes a store receives while its previous transaction runs are applied
//! together in its next one.
//!
//! Under load most of a write's cost is the transaction around it: the turn at the gate, the
//! hop to a blocking thread, `BEGIN IMMEDIATE`, and at `COMMIT` every page it dirtied appended
//! to the write-ahead log, again for each write that touches the same pages. So writes queue
//! here, one task at a time takes the gate for them, and each runs inside a savepoint of the
//! shared transaction: a write that fails is rolled back alone, its neighbours are not. The
//! first write of a transaction has no savepoint (a savepoint copies every page it changes):
//! if it fails, the transaction holds nothing else and is rolled back whole. Nobody
//! learns the result of a write before its transaction has committed, so a crash loses only
//! writes nobody was told about, exactly as with one transaction each.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::Error;
use super::gate::{Lane, WriteGate};

/// A transaction stops taking more writes after this long, so the first write in it is not
/// kept waiting for its acknowledgement by a stream of later ones.
const MAX_BATCH_TIME: Duration = Duration::from_millis(2);

/// A write waiting for a transaction.
pub(super) trait Job: Send {
    /// Runs the write inside `tx` and keeps its result: in a savepoint of its own, or, when
    /// `first`, directly in `tx`, whose caller must then roll it back if the write failed.
    fn run(self: Box<Self>, tx: &Transaction<'_>, first: bool) -> Box<dyn Done>;
    /// The transaction could not even begin.
    fn fail(self: Box<Self>, error: &Arc<rusqlite::Error>);
}

/// A write that ran, waiting for its transaction's fate.
pub(super) trait Done: Send {
    /// The write returned an error (and so changed nothing that may be committed).
    fn failed(&self) -> bool;
    fn deliver(self: Box<Self>, committed: Result<(), &Arc<rusqlite::Error>>);
}

/// One caller's write and where its answer goes.
pub(super) struct Write<F, T, E> {
    pub(super) f: F,
    pub(super) reply: oneshot::Sender<Result<T, E>>,
    pub(super) span: tracing::Span,
}

struct Written<T, E> {
    out: Result<T, E>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for Write<F, T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
{
    fn run(self: Box<Self>, tx: &Transaction<'_>, first: bool) -> Box<dyn Done> {
        let Write { f, reply, span } = *self;
        let _entered = span.enter();
        let out = if first {
            caught(tx, f)
        } else {
            in_savepoint(tx, f)
        };
        Box::new(Written { out, reply })
    }

    fn fail(self: Box<Self>, error: &Arc<rusqlite::Error>) {
        let _ = self
            .reply
            .send(Err(Error::NotCommitted(error.clone()).into()));
    }
}

impl<T: Send, E: From<Error> + Send> Done for Written<T, E> {
    fn failed(&self) -> bool {
        self.out.is_err()
    }

    fn deliver(self: Box<Self>, committed: Result<(), &Arc<rusqlite::Error>>) {
        let out = match (self.out, committed) {
            (Ok(_), Err(e)) => Err(Error::NotCommitted(e.clone()).into()),
            (out, _) => out,
        };
        // The caller may have gone; the write stands either way.
        let _ = self.reply.send(out);
    }
}

/// Runs `f` so that its failure (or panic) undoes its own changes and nothing else.
fn in_savepoint<T, E: From<Error>>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    statement(tx, "SAVEPOINT write").map_err(|e| E::from(Error::Sqlite(e)))?;
    let out = caught(tx, f);
    let end = match out {
        Ok(_) => statement(tx, "RELEASE write"),
        Err(_) => statement(tx, "ROLLBACK TO write").and_then(|()| statement(tx, "RELEASE write")),
    };
    match end {
        Ok(()) => out,
        // The transaction is no longer usable; `run` notices and ends the batch.
        Err(e) => Err(E::from(Error::Sqlite(e))),
    }
}

/// Runs `f`, with a panic turned into its error.
fn caught<T, E: From<Error>>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    match catch_unwind(AssertUnwindSafe(|| f(tx))) {
        Ok(out) => out,
        Err(panic) => Err(E::from(Error::Panicked(panic_message(&*panic)))),
    }
}

fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a write panicked".to_owned()
    }
}

/// The writes of one store waiting for their transaction.
#[derive(Default)]
pub(super) struct Queue {
    state: Mutex<Pending>,
    writes: AtomicU64,
    commits: AtomicU64,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Box<dyn Job>>,
    /// A task is taking turns at the gate for the queue.
    draining: bool,
}

/// How many writes and transactions a store has had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Writes that ran (committed or rolled back).
    pub writes: u64,
    /// Transactions that committed them.
    pub commits: u64,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job`; true when the caller must start draining the queue.
    pub(super) fn push(&self, job: Box<dyn Job>) -> bool {
        let mut pending = self.lock();
        pending.jobs.push_back(job);
        !std::mem::replace(&mut pending.draining, true)
    }

    /// Called by the draining task after each transaction: true while work is left, false
    /// once it has stopped draining (in the same critical section as [`Queue::push`] looks).
    pub(super) fn keep_draining(&self) -> bool {
        let mut pending = self.lock();
        if pending.jobs.is_empty() {
            pending.draining = false;
        }
        pending.draining
    }

    fn next(&self) -> Option<Box<dyn Job>> {
        self.lock().jobs.pop_front()
    }

    pub(super) fn stats(&self) -> WriteStats {
        WriteStats {
            writes: self.writes.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// One transaction with as many queued writes as arrive within [`MAX_BATCH_TIME`]. A
    /// background store's transaction also ends as soon as an application write waits at
    /// the gate, which then waits for one write, not a batch.
    pub(super) fn run(&self, conn: &mut Connection, gate: &WriteGate, lane: Lane) {
        let Some(first) = self.next() else { return };
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                // Only this write fails; the next turn tries again for the others.
                first.fail(&Arc::new(e));
                return;
            }
        };
        let started = Instant::now();
        let first = first.run(&tx, true);
        if first.failed() {
            // Its changes are the only ones in the transaction: undo them all. The rest of
            // the queue waits for the next turn.
            self.writes.fetch_add(1, Ordering::Relaxed);
            // (Unless SQLite already rolled it back itself.)
            if !tx.is_autocommit()
                && let Err(e) = tx.rollback()
            {
                // The dropped transaction tries once more.
                tracing::warn!(error = %e, "rolling back a failed write");
            }
            first.deliver(Ok(()));
            return;
        }
        let mut done = vec![first];
        while !tx.is_autocommit()
            && started.elapsed() < MAX_BATCH_TIME
            && !(lane == Lane::Background && gate.first_lane_waiting())
        {
            let Some(job) = self.next() else { break };
            done.push(job.run(&tx, false));
        }
        self.writes.fetch_add(done.len() as u64, Ordering::Relaxed);
        let committed = if tx.is_autocommit() {
            // SQLite rolled the whole transaction back (a full disk, an I/O error): every
            // write in it is lost, including those that had succeeded.
            drop(tx);
            Err(Arc::new(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back".to_owned()),
            )))
        } else {
            tx.commit().map_err(Arc::new)
        };
        if committed.is_ok() {
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
        for d in done {
            d.deliver(committed.as_ref().map(|_| ()));
        }
    }
}
