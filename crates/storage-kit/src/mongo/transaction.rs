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

use super::{DUPLICATE_KEY, primary};

/// Retries stop after this long. Writers that touch the same documents (the outbox's sequence
/// counter, one run's claims and commits) conflict and retry under load, and a failover makes
/// every transaction retry until a new primary is elected, which MongoDB says should typically
/// take no more than about 12 seconds. The budget has to outlast both: a shorter one would
/// turn an ordinary election into failed writes. A dead server still surfaces as an error,
/// after this plus one server-selection timeout.
pub const BUDGET: Duration = Duration::from_secs(30);
const MAX_TIME_MS_EXPIRED: i32 = 50;

/// What a transaction body can fail with.
#[derive(Debug)]
pub enum TxError<E> {
    /// A driver error; its labels decide whether the transaction is tried again.
    Driver(Error),
    /// A decided outcome (a stale version, a lost lease, a taken e-mail): abort and report it.
    Store(E),
}

impl<E> From<Error> for TxError<E> {
    fn from(e: Error) -> Self {
        TxError::Driver(e)
    }
}

impl<E> TxError<E> {
    /// The caller's error, turning a driver error into one with `driver`.
    pub fn into_store(self, driver: impl FnOnce(Error) -> E) -> E {
        match self {
            TxError::Driver(e) => driver(e),
            TxError::Store(e) => e,
        }
    }
}

/// What a duplicate-key error in a transaction's body means to its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicateKeys {
    /// A decision: the body maps the ones it expects (a taken e-mail) to its own error, and
    /// any other fails the transaction.
    Fail,
    /// A race: every write is an upsert that leaves existing documents alone, so a duplicate
    /// key only means another writer inserted the same key after this transaction's snapshot
    /// was taken; run again, it sees that document and changes nothing.
    Retry,
}

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

fn next_step(stage: Stage, f: Facts, duplicates: DuplicateKeys, elapsed: Duration) -> Next {
    if elapsed >= BUDGET {
        return Next::Fail;
    }
    if stage == Stage::Commit && f.unknown_commit && !f.max_time_expired {
        // The commit may or may not have happened; committing again is safe and tells.
        return Next::RetryCommit;
    }
    let racing_upsert =
        duplicates == DuplicateKeys::Retry && stage == Stage::Body && f.duplicate_key;
    if f.transient || racing_upsert {
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

/// Runs `body` on `context` in a transaction on `client` and commits it. `body` may run several
/// times, so it must not consume its inputs, and it must return every error it meets: a
/// swallowed error can leave a transaction that the server already aborted.
///
/// Transactions read a majority-committed snapshot from the primary and commit with majority
/// write concern, whatever the URI says: a transaction cannot read from a secondary at all, so
/// a URI asking for secondary reads (for an application's plain queries) must not reach it.
pub async fn transact<C, T, E, F>(
    client: &Client,
    context: &C,
    duplicates: DuplicateKeys,
    mut body: F,
) -> Result<T, TxError<E>>
where
    C: Sync,
    F: for<'s> FnMut(&'s C, &'s mut ClientSession) -> BoxFuture<'s, Result<T, TxError<E>>>,
{
    let mut session = client.start_session().await?;
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
            .await?;
        let value = match body(context, &mut session).await {
            Ok(value) => value,
            Err(failure) => {
                // The server drops an abandoned transaction by itself, so a failed abort only
                // delays that.
                if let Err(e) = session.abort_transaction().await {
                    tracing::debug!(error = %e, "aborting a failed transaction");
                }
                let TxError::Driver(e) = failure else {
                    return Err(failure);
                };
                match next_step(Stage::Body, facts(&e), duplicates, started.elapsed()) {
                    Next::RetryTransaction => {
                        tracing::debug!(attempt, error = %e, "retrying transaction");
                        continue 'transaction;
                    }
                    Next::RetryCommit | Next::Fail => return Err(TxError::Driver(e)),
                }
            }
        };
        loop {
            let Err(e) = session.commit_transaction().await else {
                return Ok(value);
            };
            match next_step(Stage::Commit, facts(&e), duplicates, started.elapsed()) {
                Next::RetryCommit => tracing::debug!(attempt, error = %e, "retrying commit"),
                Next::RetryTransaction => {
                    tracing::debug!(attempt, error = %e, "retrying transaction after commit");
                    continue 'transaction;
                }
                Next::Fail => return Err(TxError::Driver(e)),
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
    use DuplicateKeys::{Fail as DupFail, Retry as DupRetry};

    fn transient() -> Facts {
        Facts {
            transient: true,
            ..Facts::default()
        }
    }

    #[test]
    fn transient_errors_retry_the_whole_transaction() {
        for stage in [Stage::Body, Stage::Commit] {
            for duplicates in [DupFail, DupRetry] {
                assert_eq!(
                    next_step(stage, transient(), duplicates, EARLY),
                    Next::RetryTransaction
                );
            }
        }
    }

    #[test]
    fn unknown_commit_results_retry_only_the_commit() {
        let unknown = Facts {
            unknown_commit: true,
            ..Facts::default()
        };
        assert_eq!(
            next_step(Stage::Commit, unknown, DupFail, EARLY),
            Next::RetryCommit
        );
        // The label means nothing before a commit was attempted.
        assert_eq!(next_step(Stage::Body, unknown, DupFail, EARLY), Next::Fail);
        // A commit that ran out of server time is not retried as unknown.
        let expired = Facts {
            max_time_expired: true,
            ..unknown
        };
        assert_eq!(
            next_step(Stage::Commit, expired, DupFail, EARLY),
            Next::Fail
        );
    }

    #[test]
    fn duplicate_keys_retry_only_where_they_mean_a_race() {
        let dup = Facts {
            duplicate_key: true,
            ..Facts::default()
        };
        assert_eq!(
            next_step(Stage::Body, dup, DupRetry, EARLY),
            Next::RetryTransaction
        );
        assert_eq!(next_step(Stage::Commit, dup, DupRetry, EARLY), Next::Fail);
        assert_eq!(next_step(Stage::Body, dup, DupFail, EARLY), Next::Fail);
    }

    #[test]
    fn other_errors_and_exhausted_budgets_fail() {
        assert_eq!(
            next_step(Stage::Body, Facts::default(), DupRetry, EARLY),
            Next::Fail
        );
        assert_eq!(
            next_step(Stage::Body, transient(), DupFail, BUDGET),
            Next::Fail
        );
        let unknown = Facts {
            unknown_commit: true,
            ..Facts::default()
        };
        assert_eq!(
            next_step(Stage::Commit, unknown, DupFail, BUDGET),
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
        assert!(!f.transient && !f.duplicate_key && !f.max_time_expired && !f.unknown_commit);
        assert_eq!(
            next_step(Stage::Body, f, DupRetry, EARLY),
            Next::Fail,
            "unlabelled driver errors fail"
        );
    }
}
