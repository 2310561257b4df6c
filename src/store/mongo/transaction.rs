//! Multi-document transactions with the retry rules of MongoDB's transactions specification:
//! the whole transaction again on `TransientTransactionError` (write conflicts, elections), the
//! commit alone again on `UnknownTransactionCommitResult`, both within a time budget.

use super::{Inner, driver};
use crate::store::{StoreError, StoreResult};
use futures::future::BoxFuture;
use mongodb::ClientSession;
use mongodb::error::{
    Error, ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use mongodb::options::{ReadConcern, WriteConcern};
use std::time::{Duration, Instant};

/// Retries stop after this long. Every outbox write touches the sequence counter, so writers
/// conflict and retry under load; the budget only has to outlast a burst or an election.
const BUDGET: Duration = Duration::from_secs(30);
const MAX_TIME_MS_EXPIRED: i32 = 50;

/// What a transaction body can fail with.
pub(super) enum TxError {
    /// A driver error; its labels decide whether the transaction is tried again.
    Driver(Error),
    /// A decided outcome (stale version, missing record, taken e-mail): abort and report it.
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

fn next_step(
    stage: Stage,
    has_label: impl Fn(&str) -> bool,
    max_time_expired: bool,
    elapsed: Duration,
) -> Next {
    if elapsed >= BUDGET {
        return Next::Fail;
    }
    if stage == Stage::Commit && has_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && !max_time_expired {
        // The commit may or may not have happened; committing again is safe and tells.
        return Next::RetryCommit;
    }
    if has_label(TRANSIENT_TRANSACTION_ERROR) {
        return Next::RetryTransaction;
    }
    Next::Fail
}

fn is_max_time_expired(e: &Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => c.code == MAX_TIME_MS_EXPIRED,
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => w.code == MAX_TIME_MS_EXPIRED,
        _ => false,
    }
}

fn decide(stage: Stage, e: &Error, started: Instant) -> Next {
    next_step(
        stage,
        |label| e.contains_label(label),
        is_max_time_expired(e),
        started.elapsed(),
    )
}

/// Jittered exponential backoff, so writers that collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (5.0 * 1.5_f64.powi(attempt.min(20) as i32)).min(500.0);
    Duration::from_secs_f64(rand::random_range(0.0..1.0) * ceiling_ms / 1000.0)
}

impl Inner {
    /// Runs `body` in a transaction and commits it. `body` may run several times, so it must
    /// not consume its inputs, and it must return every error it meets: a swallowed error can
    /// leave a transaction that the server already aborted.
    pub(super) async fn transact<T, F>(&self, mut body: F) -> StoreResult<T>
    where
        F: for<'s> FnMut(&'s Inner, &'s mut ClientSession) -> BoxFuture<'s, TxResult<T>>,
    {
        let mut session = self.client.start_session().await.map_err(driver)?;
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
                .await
                .map_err(driver)?;
            let value = match body(self, &mut session).await {
                Ok(value) => value,
                Err(failure) => {
                    // Abort errors are ignored by the driver: the server drops an abandoned
                    // transaction by itself.
                    if let Err(e) = session.abort_transaction().await {
                        tracing::debug!(error = %e, "aborting a failed transaction");
                    }
                    match failure {
                        TxError::Store(e) => return Err(e),
                        TxError::Driver(e) => match decide(Stage::Body, &e, started) {
                            Next::RetryTransaction => {
                                tracing::debug!(attempt, error = %e, "retrying transaction");
                                continue 'transaction;
                            }
                            Next::RetryCommit | Next::Fail => return Err(driver(e)),
                        },
                    }
                }
            };
            loop {
                let Err(e) = session.commit_transaction().await else {
                    return Ok(value);
                };
                match decide(Stage::Commit, &e, started) {
                    Next::RetryCommit => {
                        tracing::debug!(attempt, error = %e, "retrying commit");
                    }
                    Next::RetryTransaction => {
                        tracing::debug!(attempt, error = %e, "retrying transaction after commit");
                        continue 'transaction;
                    }
                    Next::Fail => return Err(driver(e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(set: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |label| set.contains(&label)
    }

    const EARLY: Duration = Duration::from_millis(10);

    #[test]
    fn transient_errors_retry_the_whole_transaction() {
        for stage in [Stage::Body, Stage::Commit] {
            assert_eq!(
                next_step(stage, labels(&[TRANSIENT_TRANSACTION_ERROR]), false, EARLY),
                Next::RetryTransaction
            );
        }
    }

    #[test]
    fn unknown_commit_results_retry_only_the_commit() {
        assert_eq!(
            next_step(
                Stage::Commit,
                labels(&[UNKNOWN_TRANSACTION_COMMIT_RESULT]),
                false,
                EARLY
            ),
            Next::RetryCommit
        );
        // The label means nothing before a commit was attempted.
        assert_eq!(
            next_step(
                Stage::Body,
                labels(&[UNKNOWN_TRANSACTION_COMMIT_RESULT]),
                false,
                EARLY
            ),
            Next::Fail
        );
        // A commit that ran out of server time is not retried as unknown.
        assert_eq!(
            next_step(
                Stage::Commit,
                labels(&[UNKNOWN_TRANSACTION_COMMIT_RESULT]),
                true,
                EARLY
            ),
            Next::Fail
        );
    }

    #[test]
    fn other_errors_and_exhausted_budgets_fail() {
        assert_eq!(
            next_step(Stage::Body, labels(&[]), false, EARLY),
            Next::Fail
        );
        assert_eq!(
            next_step(
                Stage::Commit,
                labels(&["RetryableWriteError"]),
                false,
                EARLY
            ),
            Next::Fail
        );
        assert_eq!(
            next_step(
                Stage::Body,
                labels(&[TRANSIENT_TRANSACTION_ERROR]),
                false,
                BUDGET
            ),
            Next::Fail
        );
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in [1, 5, 50, u32::MAX] {
            assert!(backoff(attempt) <= Duration::from_millis(500));
        }
    }

    #[test]
    fn unlabelled_driver_errors_fail() {
        let e = Error::from(ErrorKind::Io(std::sync::Arc::new(std::io::Error::other(
            "x",
        ))));
        assert_eq!(decide(Stage::Body, &e, Instant::now()), Next::Fail);
    }
}
