//! This store's transactions: the storage toolkit's helper (retries, read concern, primary
//! reads) with the store's errors. A duplicate key here is a decision (a taken e-mail), never
//! retried.

use super::{Inner, driver};
use crate::store::{StoreError, StoreResult};
use futures::future::BoxFuture;
use mongodb::ClientSession;
use storage_kit::mongo::transaction::{self, DuplicateKeys};

/// What a transaction body can fail with: a driver error, whose labels decide whether the
/// transaction is tried again, or a decided outcome (stale version, missing record, taken
/// e-mail) to abort with and report.
pub(super) type TxError = transaction::TxError<StoreError>;

pub(super) type TxResult<T> = Result<T, TxError>;

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl Inner {
    /// Runs `body` in a transaction and commits it (see [`transaction::transact`]: `body` may
    /// run several times).
    pub(super) async fn transact<T, F>(&self, body: F) -> StoreResult<T>
    where
        F: for<'s> FnMut(&'s Inner, &'s mut ClientSession) -> BoxFuture<'s, TxResult<T>>,
    {
        transaction::transact(&self.client, self, DuplicateKeys::Fail, body)
            .await
            .map_err(|e| e.into_store(driver))
    }
}
