//! Multi-document transactions with the retry rules of MongoDB's transactions specification:
//! the whole transaction again on `TransientTransactionError` (write conflicts, elections,
//! network errors), the commit alone again on `UnknownTransactionCommitResult`, both within a
//! time budget.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use mongodb::error::{
    Error, ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use mongodb::options::{ReadConcern, WriteConcern};
use mongodb::{Client, ClientSession};

use super::{Collections, driver, primary};
use crate::inngest::executor::store::{StoreError, StoreResult};

/// Retries stop after this long. Concurrent claims and commits of one run conflict and retry;
/// the budget only has to outlast a burst or an election, and a dead server should surface as
/// an error the worker loop logs and retries on its own.
const BUDGET: Duration = Duration::from_secs(10);
const MAX_TIME_MS_EXPIRED: i32 = 50;
/// Duplicate key; 11001 is its pre-3.0 spelling, still returned by some paths.
const DUPLICATE_KEY: [i32; 2] = [11000, 11001];

/// What a transaction body can fail with.
pub(super) enum TxError {
    /// A driver error; its labels decide whether the transaction is tried again.
    Driver(Error),
    /// A decided outcome (lost lease, stale revision, corrupt data): abort and report it.
    Store(StoreError),
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Driver(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

pub(super) type TxResult<T> = Result<T, TxError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Body,
    Commit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    RetryTransaction,
    RetryCommit,
    Fail,
}

#[derive(Clone, Copy, Debug, Default)]
struct Facts {
    transient: bool,
    unknown_commit: bool,
    max_time_expired: bool,
    duplicate_key: bool,
}

fn next_step(stage: Stage, f: Facts, elapsed: Duration) -> Next {
    if elapsed >= BUDGET {
        return Next::Fail;
    }
    if stage == Stage::Commit && f.unknown_commit && !f.max_time_expired {
        // The commit may or may not have happened; committing again is safe and tells.
        return Next::RetryCommit;
    }
    // Every write here is an upsert that leaves existing documents alone, so a duplicate key
    // only means another writer inserted the same key after this transaction's snapshot was
    // taken; run again, it then sees that document and changes nothing.
    if f.transient || (stage == Stage::Body && f.duplicate_key) {
        return Next::RetryTransaction;
    }
    Next::Fail
}

fn facts(e: &Error) -> Facts {
    let code = match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    };
    Facts {
        transient: e.contains_label(TRANSIENT_TRANSACTION_ERROR),
        unknown_commit: e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT),
        max_time_expired: code == Some(MAX_TIME_MS_EXPIRED),
        duplicate_key: code.is_some_and(|c| DUPLICATE_KEY.contains(&c)),
    }
}

/// Jittered exponential backoff, so writers that collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (5.0 * 1.5_f64.powi(attempt.min(20) as i32)).min(500.0);
    Duration::from_secs_f64(rand::random_range(0.0..1.0) * ceiling_ms / 1000.0)
}

/// Runs `body` in a transaction and commits it. `body` may run several times, so it must not
/// consume its inputs, and it must return every error it meets: a swallowed error can leave a
/// transaction that the server already aborted.
pub(super) async fn transact<T, F>(client: &Client, db: &Collections, mut body: F) -> StoreResult<T>
where
    F: for<'s> FnMut(&'s Collections, &'s mut ClientSession) -> BoxFuture<'s, TxResult<T>>,
{
    let mut session = client.start_session().await.map_err(driver)?;
    let started = Instant::now();
    let mut attempt = 0_u32;
    'transaction: loop {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        attempt += 1;
        session
            .start_transaction()
            .read_concern(ReadConcern::snapshot())
            .write_concern(WriteConcern::majority())
            .selection_criteria(primary())
            .await
            .map_err(driver)?;
        let value = match body(db, &mut session).await {
            Ok(value) => value,
            Err(failure) => {
                // The server drops an abandoned transaction by itself, so a failed abort only
                // delays that.
                if let Err(e) = session.abort_transaction().await {
                    tracing::debug!(error = %e, "aborting a failed transaction");
                }
                match failure {
                    TxError::Store(e) => return Err(e),
                    TxError::Driver(e) => {
                        match next_step(Stage::Body, facts(&e), started.elapsed()) {
                            Next::RetryTransaction => {
                                tracing::debug!(attempt, error = %e, "retrying transaction");
                                continue 'transaction;
                            }
                            Next::RetryCommit | Next::Fail => return Err(driver(e)),
                        }
                    }
                }
            }
        };
        loop {
            let Err(e) = session.commit_transaction().await else {
                return Ok(value);
            };
            match next_step(Stage::Commit, facts(&e), started.elapsed()) {
                Next::RetryCommit => tracing::debug!(attempt, error = %e, "retrying commit"),
                Next::RetryTransaction => {
                    tracing::debug!(attempt, error = %e, "retrying transaction after commit");
                    continue 'transaction;
                }
                Next::Fail => return Err(driver(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{self, doc};
    use mongodb::error::{CommandError, WriteError};

    const EARLY: Duration = Duration::from_millis(10);

    fn transient() -> Facts {
        Facts {
            transient: true,
            ..Facts::default()
        }
    }

    #[test]
    fn transient_errors_retry_the_whole_transaction() {
        for stage in [Stage::Body, Stage::Commit] {
            assert_eq!(next_step(stage, transient(), EARLY), Next::RetryTransaction);
        }
    }

    #[test]
    fn unknown_commit_results_retry_only_the_commit() {
        let unknown = Facts {
            unknown_commit: true,
            ..Facts::default()
        };
        assert_eq!(next_step(Stage::Commit, unknown, EARLY), Next::RetryCommit);
        // The label means nothing before a commit was attempted.
        assert_eq!(next_step(Stage::Body, unknown, EARLY), Next::Fail);
        // A commit that ran out of server time is not retried as unknown.
        let expired = Facts {
            max_time_expired: true,
            ..unknown
        };
        assert_eq!(next_step(Stage::Commit, expired, EARLY), Next::Fail);
    }

    #[test]
    fn duplicate_keys_of_racing_upserts_retry_the_transaction() {
        let dup = Facts {
            duplicate_key: true,
            ..Facts::default()
        };
        assert_eq!(next_step(Stage::Body, dup, EARLY), Next::RetryTransaction);
        assert_eq!(next_step(Stage::Commit, dup, EARLY), Next::Fail);
    }

    #[test]
    fn other_errors_and_exhausted_budgets_fail() {
        assert_eq!(next_step(Stage::Body, Facts::default(), EARLY), Next::Fail);
        assert_eq!(next_step(Stage::Body, transient(), BUDGET), Next::Fail);
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in [1, 5, 50, u32::MAX] {
            assert!(backoff(attempt) <= Duration::from_millis(500));
        }
    }

    #[test]
    fn facts_are_read_from_codes_and_labels() {
        let w: WriteError =
            bson::from_document(doc! { "code": 11000, "errmsg": "E11000 duplicate key" })
                .expect("BUG: literal");
        let dup = Error::from(ErrorKind::Write(WriteFailure::WriteError(w)));
        assert!(facts(&dup).duplicate_key && !facts(&dup).transient);

        let c: CommandError = bson::from_document(
            doc! { "code": 50, "codeName": "MaxTimeMSExpired", "errmsg": "slow" },
        )
        .expect("BUG: literal");
        let expired = Error::from(ErrorKind::Command(c));
        assert!(facts(&expired).max_time_expired);
        assert!(!facts(&expired).unknown_commit);

        let io = Error::from(ErrorKind::Io(std::sync::Arc::new(std::io::Error::other(
            "x",
        ))));
        let f = facts(&io);
        assert!(!f.transient && !f.duplicate_key && !f.max_time_expired);
    }
}
