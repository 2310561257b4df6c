//! The MongoDB store, for production: a replica set or Atlas.
//!
//! Documents keep our UUID v7 string ids as `_id`, so ordering by `_id` is ordering by creation,
//! exactly as on SQLite. Timestamps are BSON dates; BSON dates hold milliseconds, so every
//! timestamp is cut to milliseconds before it is written and what a write returns equals what a
//! later read returns.
//!
//! Writes that carry events run in a multi-document transaction together with their outbox rows.
//! Transactions need a replica set (or a sharded cluster), so a standalone `mongod` is refused at
//! connect with a message saying so; a single-node replica set (`mongod --replSet rs0` plus
//! `rs.initiate()`) is enough for development.
//!
//! Every call runs in its own spawned task. Dropping a driver future mid-operation can leave a
//! connection or a session in a bad state (the driver's RUST-937 warning), and axum drops a
//! handler's future when its client goes away; a spawned task finishes regardless.

mod accounts;
mod activity;
mod attachments;
mod automation;
mod loads;
mod outbox;
mod staff;
mod tickets;
mod transaction;
mod users;
#[cfg(test)]
pub(crate) mod wire_tests;

use super::{Store, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use storage_kit::mongo::{self as kit, DUPLICATE_KEY, SetupError, index};

/// The name the server logs for this service's connections, unless the URI names one.
const APP_NAME: &str = "ticketing";
/// Told to the operator of a standalone server, which cannot run transactions.
const NEEDS_TRANSACTIONS: &str =
    "this service writes each record and its events in one transaction";

const USERS: &str = "users";
const TICKETS: &str = "tickets";
const COMMENTS: &str = "comments";
const ACTIVITY: &str = "ticket_activity";
const OUTBOX: &str = "outbox";
const COUNTERS: &str = "counters";
/// Keyed by the idempotency key as `_id`: one record per mail, whatever the replays.
const SENT_MAIL: &str = "sent_mail";
/// One-time account links, keyed by their hash.
const ACCOUNT_TOKENS: &str = "account_tokens";

#[derive(Clone)]
pub struct MongoStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    db: Database,
    users: Collection<Document>,
    tickets: Collection<Document>,
    comments: Collection<Document>,
    activity: Collection<Document>,
    outbox: Collection<Document>,
    counters: Collection<Document>,
    sent_mail: Collection<Document>,
    account_tokens: Collection<Document>,
}

impl MongoStore {
    /// Connects, checks that the deployment supports transactions, and creates the indexes.
    /// Fails within a few seconds when the server cannot be reached.
    pub async fn connect(uri: &str, database: &str) -> StoreResult<Self> {
        let client = kit::connect(uri, Some(APP_NAME))
            .await
            .map_err(setup_failed)?;
        let db = client.database(database);
        let inner = Arc::new(Inner {
            users: db.collection(USERS),
            tickets: db.collection(TICKETS),
            comments: db.collection(COMMENTS),
            activity: db.collection(ACTIVITY),
            outbox: db.collection(OUTBOX),
            counters: db.collection(COUNTERS),
            sent_mail: db.collection(SENT_MAIL),
            account_tokens: db.collection(ACCOUNT_TOKENS),
            client,
            db,
        });
        let setup = inner.clone();
        kit::detached(async move {
            // The start-up ping: refuses unreachable servers and deployments without
            // transactions.
            kit::check_deployment(&setup.client, NEEDS_TRANSACTIONS)
                .await
                .map_err(setup_failed)?;
            setup.create_indexes().await?;
            setup.create_attachment_indexes().await?;
            setup.seed_outbox_counter().await
        })
        .await?;
        tracing::info!(database, "connected to MongoDB");
        Ok(Self { inner })
    }

    /// The database on this store's client, for components that keep collections of their own
    /// beside the application's (the embedded executor's run store) on the same connections.
    pub fn database(&self) -> Database {
        self.inner.db.clone()
    }

    /// Runs `f` on the shared state in a task of its own (see the module note on cancellation).
    async fn run<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        kit::detached(f(self.inner.clone())).await
    }
}

impl From<kit::Cancelled> for StoreError {
    fn from(e: kit::Cancelled) -> Self {
        StoreError::Other(e.into())
    }
}

impl Inner {
    async fn create_indexes(&self) -> StoreResult<()> {
        let plan: [(&Collection<Document>, Vec<IndexModel>); 6] = [
            (
                &self.users,
                vec![
                    index("users_email_unique", doc! { "email": 1 }, true),
                    index("users_by_role", doc! { "role": 1, "_id": 1 }, false),
                ],
            ),
            (
                &self.tickets,
                vec![
                    index(
                        "tickets_by_creator",
                        doc! { "created_by": 1, "_id": 1 },
                        false,
                    ),
                    index(
                        "tickets_by_assignee",
                        doc! { "assigned_to": 1, "_id": 1 },
                        false,
                    ),
                    // Staff loads: open and in-progress tickets per assignee.
                    index(
                        "tickets_by_assignee_status",
                        doc! { "assigned_to": 1, "status": 1 },
                        false,
                    ),
                    index("tickets_by_status", doc! { "status": 1, "_id": 1 }, false),
                    index(
                        "tickets_by_priority",
                        doc! { "priority": 1, "_id": 1 },
                        false,
                    ),
                    index(
                        "tickets_by_category",
                        doc! { "category": 1, "_id": 1 },
                        false,
                    ),
                    index(
                        "tickets_by_sla_due",
                        doc! { "sla_due_at": 1, "_id": 1 },
                        false,
                    ),
                ],
            ),
            (
                &self.comments,
                vec![index(
                    "comments_by_ticket",
                    doc! { "ticket_id": 1, "_id": 1 },
                    false,
                )],
            ),
            (
                &self.activity,
                vec![index(
                    "activity_by_ticket",
                    doc! { "ticket_id": 1, "_id": 1 },
                    false,
                )],
            ),
            (
                // `_id` is the event id, unique by construction.
                &self.outbox,
                vec![
                    index("outbox_seq_unique", doc! { "seq": 1 }, true),
                    index("outbox_pending", doc! { "sent_at": 1, "seq": 1 }, false),
                ],
            ),
            (
                &self.account_tokens,
                vec![
                    index(
                        "account_tokens_by_user",
                        doc! { "user_id": 1, "purpose": 1 },
                        false,
                    ),
                    // The server deletes links once `expires_at` has passed.
                    expiring_index("account_tokens_expiry", doc! { "expires_at": 1 }),
                ],
            ),
        ];
        for (collection, models) in plan {
            collection.create_indexes(models).await.map_err(|e| {
                StoreError::Unavailable(format!("creating indexes on {}: {e}", collection.name()))
            })?;
        }
        Ok(())
    }

    /// Makes sure the sequence counter exists before any transaction needs it, and never lags
    /// behind the outbox (for instance after the counters collection was dropped by hand).
    async fn seed_outbox_counter(&self) -> StoreResult<()> {
        let last = self
            .outbox
            .find_one(doc! {})
            .sort(doc! { "seq": -1 })
            .projection(doc! { "seq": 1 })
            .await
            .map_err(driver)?
            .and_then(|d| d.get("seq").and_then(bson_i64))
            .unwrap_or(0);
        self.counters
            .update_one(
                doc! { "_id": outbox::SEQ_COUNTER },
                doc! { "$max": { "value": last } },
            )
            .upsert(true)
            .await
            .map_err(driver)?;
        Ok(())
    }
}

/// A TTL index: documents go once the date in `keys` has passed.
fn expiring_index(name: &str, keys: Document) -> IndexModel {
    let options = IndexOptions::builder()
        .name(name.to_owned())
        .expire_after(Duration::ZERO)
        .build();
    IndexModel::builder().keys(keys).options(options).build()
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run(|inner| async move {
            inner
                .db
                .run_command(doc! { "ping": 1 })
                .await
                .map_err(unreachable)?;
            Ok(())
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "mongodb"
    }
}

/// The name MongoDB gives every collection's `_id` index.
const ID_INDEX: &str = "_id_";
/// The unique index a write error tripped over, if it is a duplicate-key error.
fn duplicate_key_index(e: &mongodb::error::Error) -> Option<String> {
    let message = match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) if DUPLICATE_KEY.contains(&w.code) => {
            &w.message
        }
        ErrorKind::Command(c) if DUPLICATE_KEY.contains(&c.code) => &c.message,
        ErrorKind::InsertMany(m) => {
            &m.write_errors
                .as_ref()?
                .iter()
                .find(|w| DUPLICATE_KEY.contains(&w.code))?
                .message
        }
        _ => return None,
    };
    // "E11000 duplicate key error collection: db.users index: users_email_unique dup key: {…}"
    let name = message
        .split_once(" index: ")
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or_default())
        .unwrap_or_default();
    Some(name.to_owned())
}

/// Maps a driver error: network and server-selection failures are `Unavailable` (503), the
/// rest is unexpected.
fn driver(e: mongodb::error::Error) -> StoreError {
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.into()),
    }
}

/// Reads every document a query (`find` or `aggregate`) returns.
async fn all_documents<Q>(query: Q) -> StoreResult<Vec<Document>>
where
    Q: std::future::IntoFuture<Output = mongodb::error::Result<mongodb::Cursor<Document>>>,
{
    use futures::TryStreamExt;
    query
        .await
        .map_err(driver)?
        .try_collect()
        .await
        .map_err(driver)
}

/// What a ticket holds in a collection of its own (comments, attachments, activity), in the
/// order it was added: ids are UUID v7.
async fn ticket_records<T>(
    collection: &Collection<Document>,
    filter: Document,
    decode: impl Fn(Document) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    all_documents(collection.find(filter).sort(doc! { "_id": 1 }))
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

/// The filter for a ticket's comments or attachments; the internal ones only for staff.
fn visible_on_ticket(ticket_id: &str, include_internal: bool) -> Document {
    let mut filter = doc! { "ticket_id": ticket_id };
    if !include_internal {
        filter.insert("internal", false);
    }
    filter
}

fn unreachable(e: mongodb::error::Error) -> StoreError {
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => StoreError::Unavailable(kit::unreachable_message(&e)),
        _ => driver(e),
    }
}

/// Setting up the client: every failure means the store cannot be used.
fn setup_failed(e: SetupError) -> StoreError {
    match e {
        SetupError::Unreachable(e) => unreachable(e),
        e => StoreError::Unavailable(e.to_string()),
    }
}

fn bad_document(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!(
        "unexpected {what} document in MongoDB: {e}"
    ))
}

/// Now, cut to what a BSON date holds.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn to_bson_date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

fn from_bson_date(t: bson::DateTime) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t.timestamp_millis())
        .ok_or_else(|| bad_document("date", t.timestamp_millis()))
}

fn from_opt_bson_date(t: Option<bson::DateTime>) -> StoreResult<Option<DateTime<Utc>>> {
    t.map(from_bson_date).transpose()
}

/// Counts come back as 32- or 64-bit integers depending on their size.
fn bson_i64(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        _ => None,
    }
}

/// `limit + 1` rows tell whether another page follows; `limit(0)` would mean "no limit".
fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::error::{CommandError, Error, WriteError};

    fn write_error(code: i32, message: &str) -> Error {
        let w: WriteError = bson::from_document(doc! { "code": code, "errmsg": message }).unwrap();
        Error::from(ErrorKind::Write(WriteFailure::WriteError(w)))
    }

    #[test]
    fn duplicate_keys_name_their_index() {
        let e = write_error(
            11000,
            r#"E11000 duplicate key error collection: t.users index: users_email_unique dup key: { email: "a@b.io" }"#,
        );
        assert_eq!(
            duplicate_key_index(&e).as_deref(),
            Some("users_email_unique")
        );
        let e = write_error(
            11000,
            r#"E11000 duplicate key error collection: t.outbox index: _id_ dup key: { _id: "x" }"#,
        );
        assert_eq!(duplicate_key_index(&e).as_deref(), Some("_id_"));
        assert_eq!(duplicate_key_index(&write_error(121, "validation")), None);

        let c: CommandError = bson::from_document(doc! {
            "code": 11000, "codeName": "DuplicateKey",
            "errmsg": "E11000 duplicate key error collection: t.users index: users_email_unique dup key: {}",
        })
        .unwrap();
        let e = Error::from(ErrorKind::Command(c));
        assert_eq!(
            duplicate_key_index(&e).as_deref(),
            Some("users_email_unique")
        );
    }

    #[test]
    fn network_failures_are_unavailable_and_the_rest_unexpected() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e = Error::from(ErrorKind::Io(Arc::new(io)));
        assert!(matches!(driver(e), StoreError::Unavailable(_)));
        assert!(matches!(
            driver(write_error(2, "bad value")),
            StoreError::Other(_)
        ));
    }

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let t = now();
        assert_eq!(from_bson_date(to_bson_date(t)).unwrap(), t);
        assert_eq!(t.timestamp_subsec_nanos() % 1_000_000, 0);
    }

    #[test]
    fn fetch_limit_never_means_unlimited() {
        assert_eq!(fetch_limit(0), 1);
        assert_eq!(fetch_limit(20), 21);
        assert_eq!(fetch_limit(usize::MAX), i64::MAX);
    }
}
