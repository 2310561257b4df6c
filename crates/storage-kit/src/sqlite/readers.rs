//! The reader connections of a file. Readers wait for a free connection asynchronously (on a
//! semaphore with one permit per connection), not on a thread of the blocking pool.
//!
//! Connections are opened when first needed, not with the store: each costs a file open and
//! its pragmas, milliseconds of a cold start, and an instance that serves a few requests and
//! stops (a serverless function) may never need more than one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(super) struct Readers {
    path: PathBuf,
    /// Opened connections not in use.
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

/// A reader connection, back among the idle ones when dropped.
pub(super) struct Reader<'a> {
    conn: Option<Connection>,
    readers: &'a Readers,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // After a panic in a read its transaction is rolled back here, if its own drop
            // could not do it, rather than the connection being given to the next reader.
            if !conn.is_autocommit()
                && let Err(e) = conn.execute_batch("ROLLBACK")
            {
                tracing::warn!(error = %e, "dropping a reader connection left in a transaction");
                return;
            }
            self.readers.idle().push(conn);
        }
    }
}

impl Readers {
    pub(super) fn new(path: PathBuf, max: usize) -> Readers {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The right to take a connection; the holder must keep it until the connection is back.
    /// `None` only if the semaphore were closed, which it never is.
    pub(super) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// An idle connection and the permit for it, if both are free this instant. Never waits
    /// and never opens a connection. The connection is the first of the pair so that, dropped
    /// in order, it is back before the permit is.
    pub(super) fn take_idle(&self) -> Option<(Reader<'_>, OwnedSemaphorePermit)> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        let conn = self.idle().pop()?;
        Some((
            Reader {
                conn: Some(conn),
                readers: self,
            },
            permit,
        ))
    }

    /// An idle connection, or a new one while fewer than the permits are open.
    pub(super) fn take(&self) -> rusqlite::Result<Reader<'_>> {
        let conn = match self.idle().pop() {
            Some(conn) => conn,
            None => super::connect(&self.path)?,
        };
        Ok(Reader {
            conn: Some(conn),
            readers: self,
        })
    }
}
