//! One queue for the write lock of each SQLite file within this process.
//!
//! The application store and the embedded executor's run store write to the same file, each
//! through its own connection. SQLite has no queue for its write lock: a writer that finds it
//! taken sleeps and tries again, so under load a short API write could lose the race to the
//! executor's commits many times over and wait tens of milliseconds, while the lock sat free
//! during the sleeps. Taking a turn here first makes writers of one process never meet inside
//! SQLite; the busy handler below remains for other processes (the `ticketing runs` commands)
//! writing to the same file.
//!
//! Two lanes: the application's writes go before the executor's bookkeeping, so a request
//! waits for at most the write in progress, however much background work is queued. Within a
//! lane, turns go in arrival order.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

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
