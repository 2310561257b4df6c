//! The reader connections of a file. Readers wait for a free connection asynchronously (on a
//! semaphore with one permit per connection), not on a thread of the blocking pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(super) struct Readers {
    connections: Box<[Mutex<Connection>]>,
    permits: Arc<Semaphore>,
    /// Where the next search for an idle connection starts, so all of them get used.
    next: AtomicUsize,
}

impl Readers {
    pub(super) fn new(connections: Vec<Connection>) -> Readers {
        Readers {
            permits: Arc::new(Semaphore::new(connections.len())),
            connections: connections.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The right to take a connection; the holder must keep it until the connection is back.
    /// `None` only if the semaphore were closed, which it never is; [`Readers::take`] then
    /// still works, it may wait on a thread.
    pub(super) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// An idle connection. With a permit held one is always idle; should none be, this waits
    /// for one rather than fail.
    pub(super) fn take(&self) -> MutexGuard<'_, Connection> {
        let n = self.connections.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            match self.connections[(first + i) % n].try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => {
                    self.connections[(first + i) % n].clear_poison();
                    return super::recovered(p.into_inner());
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        super::lock(&self.connections[first % n])
    }
}
