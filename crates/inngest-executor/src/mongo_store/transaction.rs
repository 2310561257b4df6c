//! The run store's transactions: the storage toolkit's helper (retries, read concern, primary
//! reads) with the store's errors. Every write is an upsert, so a duplicate key is a race
//! with another writer and the transaction runs again.

use futures::future::BoxFuture;
use mongodb::{Client, ClientSession};
use storage_kit::mongo::transaction::{self, DuplicateKeys};

use super::{Collections, driver};
use crate::store::{StoreError, StoreResult};

/// What a transaction body can fail with: a driver error, whose labels decide whether the
/// transaction is tried again, or a decided outcome (lost lease, stale revision, corrupt data)
/// to abort with and report.
pub(super) type TxError = transaction::TxError<StoreError>;

pub(super) type TxResult<T> = Result<T, TxError>;

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

/// Runs `body` in a transaction and commits it (see [`transaction::transact`]: `body` may run
/// several times).
pub(super) async fn transact<T, F>(client: &Client, db: &Collections, body: F) -> StoreResult<T>
where
    F: for<'s> FnMut(&'s Collections, &'s mut ClientSession) -> BoxFuture<'s, TxResult<T>>,
{
    transaction::transact(client, db, DuplicateKeys::Retry, body)
        .await
        .map_err(|e| e.into_store(driver))
}
