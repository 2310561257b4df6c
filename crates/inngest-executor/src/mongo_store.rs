//! [`RunStore`] on MongoDB, with the SQLite store's semantics. It can share the application's
//! client and database (every collection is prefixed `inngest_`, see its `documents` module) or
//! connect on its own.
//!
//! Every change that touches several documents (an ingest, a commit, a claim, an enqueue) is
//! one multi-document transaction, retried on `TransientTransactionError` and
//! `UnknownTransactionCommitResult`. Transactions need a replica set or a sharded cluster, so a
//! standalone `mongod` is refused when the store opens; a single-node replica set is enough.
//!
//! Claims are safe with several workers: each lease is a `findOneAndUpdate` whose filter
//! repeats the due and free-lease conditions, and a claim that fills a concurrency slot also
//! writes that slot's document, so two claims racing for the last free slot conflict and one
//! of them runs again and sees the other's lease.
//!
//! Every call runs in its own spawned task: dropping a driver future mid-operation can leave a
//! connection or a session in a bad state (the driver's RUST-937 warning), and the executor's
//! callers may be dropped (shutdown, a client going away); a spawned task finishes regardless.

mod documents;
#[cfg(test)]
mod fake_db;
mod transaction;
#[cfg(test)]
mod wire_tests;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::{FutureExt, TryStreamExt};
use mongodb::bson::{Document, doc};
use mongodb::options::{CollectionOptions, ReturnDocument};
use mongodb::{Client, ClientSession, Collection, Database, SessionCursor};
use storage_kit::mongo::{self as kit, SetupError, primary};

use self::documents as docs;
use self::documents::Upsert;
use self::transaction::{TxResult, transact};
use super::state::RunState;
use super::store::{
    Claimed, Commit, Ingest, IngestOutcome, Lease, Pause, QueueDepth, QueueItem, RunFilter,
    RunStore, RunSummary, StoreError, StoreResult, Swept, pick_claimable,
};

#[derive(Clone)]
pub struct MongoRunStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MongoRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoRunStore")
            .field("database", &self.inner.database.name())
            .finish()
    }
}

struct Inner {
    client: Client,
    database: Database,
    collections: Collections,
}

struct Collections {
    events: Collection<Document>,
    runs: Collection<Document>,
    queue: Collection<Document>,
    pauses: Collection<Document>,
    slots: Collection<Document>,
}

fn driver(e: mongodb::error::Error) -> StoreError {
    StoreError::Unavailable(kit::unreachable_message(&e))
}

fn setup_failed(e: SetupError) -> StoreError {
    match e {
        SetupError::Unreachable(e) => driver(e),
        e => StoreError::Unavailable(e.to_string()),
    }
}

impl From<kit::Cancelled> for StoreError {
    fn from(e: kit::Cancelled) -> Self {
        StoreError::Unavailable(format!("run {e}"))
    }
}

impl MongoRunStore {
    /// Connects with a client of its own; fails within a few seconds when the server cannot be
    /// reached (unless the URI sets longer timeouts).
    pub async fn connect(uri: &str, database: &str) -> StoreResult<MongoRunStore> {
        let client = kit::connect(uri, None).await.map_err(setup_failed)?;
        MongoRunStore::open(client.database(database)).await
    }

    /// Uses `database` and its client (share the application's), checks that the deployment
    /// runs transactions, and creates the collections and indexes.
    pub async fn open(database: Database) -> StoreResult<MongoRunStore> {
        // Reads go to the primary whatever read preference the URI sets: a run loaded from a
        // lagging secondary would only ever conflict, and claims must see every lease.
        let on_primary = |name: &str| {
            database.collection_with_options(
                name,
                CollectionOptions::builder()
                    .selection_criteria(primary())
                    .build(),
            )
        };
        let collections = Collections {
            events: on_primary(docs::EVENTS),
            runs: on_primary(docs::RUNS),
            queue: on_primary(docs::QUEUE),
            pauses: on_primary(docs::PAUSES),
            slots: on_primary(docs::SLOTS),
        };
        let inner = Arc::new(Inner {
            client: database.client().clone(),
            database,
            collections,
        });
        let setup = inner.clone();
        kit::detached(async move {
            // The start-up ping: refuses unreachable servers and standalone ones.
            kit::check_deployment(
                &setup.client,
                "the executor commits each step of a run in one transaction",
            )
            .await
            .map_err(setup_failed)?;
            setup.create_collections().await?;
            setup.backfill_ended_at().await
        })
        .await?;
        tracing::debug!(database = inner.database.name(), "executor run store ready");
        Ok(MongoRunStore { inner })
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

    /// Applies `plan` in one transaction, retried as a whole when it has to be.
    async fn transact<P, T>(&self, plan: P) -> StoreResult<T>
    where
        P: Plan<Output = T> + Send + Sync + 'static,
        T: Send + 'static,
    {
        let plan = Arc::new(plan);
        self.run(move |inner| async move {
            transact(&inner.client, &inner.collections, move |c, s| {
                let plan = plan.clone();
                async move { plan.apply(c, s).await }.boxed()
            })
            .await
        })
        .await
    }
}

impl Inner {
    /// Creates the collections up front (transactions on older servers and on sharded
    /// clusters cannot create them) and their indexes.
    async fn create_collections(&self) -> StoreResult<()> {
        for name in [
            docs::EVENTS,
            docs::RUNS,
            docs::QUEUE,
            docs::PAUSES,
            docs::SLOTS,
        ] {
            kit::create_collection(&self.database, name)
                .await
                .map_err(driver)?;
        }
        for (name, models) in docs::indexes() {
            self.database
                .collection::<Document>(name)
                .create_indexes(models)
                .await
                .map_err(|e| StoreError::Unavailable(format!("creating indexes on {name}: {e}")))?;
        }
        Ok(())
    }
}

impl Inner {
    /// Runs are swept by the time they finished; finished runs stored before that was recorded
    /// count as finished now, so they are kept one more retention period.
    async fn backfill_ended_at(&self) -> StoreResult<()> {
        self.collections
            .runs
            .update_many(
                docs::runs_without_end(),
                doc! { "$set": { "ended_at": docs::date(Utc::now()) } },
            )
            .await
            .map_err(driver)?;
        Ok(())
    }

    /// Up to `limit` ids matching `filter` in `collection`.
    async fn ids(
        collection: &Collection<Document>,
        filter: Document,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let found: Vec<Document> = collection
            .find(filter)
            .projection(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(driver)?
            .try_collect()
            .await
            .map_err(driver)?;
        Ok(found
            .iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
            .collect())
    }
}

impl Collections {
    fn named(&self, name: &str) -> &Collection<Document> {
        match name {
            docs::EVENTS => &self.events,
            docs::RUNS => &self.runs,
            docs::QUEUE => &self.queue,
            docs::PAUSES => &self.pauses,
            _ => &self.slots,
        }
    }

    /// Inserts unless the filter matches; true when it inserted.
    async fn upsert(&self, u: &Upsert, s: &mut ClientSession) -> TxResult<bool> {
        let result = self
            .named(u.collection)
            .update_one(u.filter.clone(), u.update.clone())
            .upsert(true)
            .session(&mut *s)
            .await?;
        Ok(result.upserted_id.is_some())
    }
}

async fn collect_in(
    mut cursor: SessionCursor<Document>,
    s: &mut ClientSession,
) -> TxResult<Vec<Document>> {
    let mut out = Vec::new();
    while let Some(d) = cursor.next(&mut *s).await {
        out.push(d?);
    }
    Ok(out)
}

/// The body of a transaction, built before it starts so that a retry replays the same writes.
#[async_trait]
trait Plan {
    type Output;
    async fn apply(&self, c: &Collections, s: &mut ClientSession) -> TxResult<Self::Output>;
}

struct IngestPlan {
    event: Upsert,
    writes: Vec<Upsert>,
    resumes: Vec<(String, Upsert)>,
    remove_keys: Vec<String>,
}

impl IngestPlan {
    fn new(ingest: &Ingest, now: DateTime<Utc>) -> StoreResult<IngestPlan> {
        let mut writes = Vec::new();
        for run in &ingest.runs {
            writes.push(docs::run_upsert(run)?);
        }
        for item in &ingest.items {
            writes.push(docs::item_upsert(item)?);
        }
        for p in &ingest.pauses {
            writes.push(docs::pause_upsert(p)?);
        }
        let resumes = ingest
            .resumes
            .iter()
            .map(|(pause_id, item)| Ok((pause_id.clone(), docs::item_upsert(item)?)))
            .collect::<StoreResult<_>>()?;
        Ok(IngestPlan {
            event: docs::event_upsert(&ingest.event_id, &ingest.event, now),
            writes,
            resumes,
            remove_keys: ingest.remove_items.clone(),
        })
    }
}

#[async_trait]
impl Plan for IngestPlan {
    type Output = IngestOutcome;

    async fn apply(&self, c: &Collections, s: &mut ClientSession) -> TxResult<IngestOutcome> {
        if !c.upsert(&self.event, s).await? {
            return Ok(IngestOutcome::Duplicate);
        }
        for w in &self.writes {
            c.upsert(w, s).await?;
        }
        let mut resumed = 0;
        for (pause_id, item) in &self.resumes {
            let gone = c
                .pauses
                .delete_one(doc! { "_id": pause_id })
                .session(&mut *s)
                .await?
                .deleted_count;
            if gone == 1 {
                c.upsert(item, s).await?;
                resumed += 1;
            }
        }
        if !self.remove_keys.is_empty() {
            c.queue
                .delete_many(docs::keys_in(&self.remove_keys))
                .session(&mut *s)
                .await?;
        }
        Ok(IngestOutcome::Accepted { resumed })
    }
}

struct CommitPlan {
    done: Option<Lease>,
    /// Run id, filter on the loaded revision, update.
    run: Option<(String, Document, Document)>,
    remove_run_work: Vec<String>,
    remove_items: Vec<String>,
    remove_pauses: Vec<String>,
    /// New runs, events, items and pauses, in that order.
    inserts: Vec<Upsert>,
}

impl CommitPlan {
    fn new(c: Commit, now: DateTime<Utc>) -> StoreResult<CommitPlan> {
        let run = match &c.run {
            Some(run) => {
                let (filter, update) = docs::run_update(run)?;
                Some((run.id.clone(), filter, update))
            }
            None => None,
        };
        let mut inserts = Vec::new();
        for run in &c.new_runs {
            inserts.push(docs::run_upsert(run)?);
        }
        for ev in &c.events {
            if let Some(id) = ev.get("id").and_then(serde_json::Value::as_str) {
                inserts.push(docs::event_upsert(id, ev, now));
            }
        }
        for item in &c.enqueue {
            inserts.push(docs::item_upsert(item)?);
        }
        for p in &c.pauses {
            inserts.push(docs::pause_upsert(p)?);
        }
        Ok(CommitPlan {
            done: c.done,
            run,
            remove_run_work: c.remove_run_work,
            remove_items: c.remove_items,
            remove_pauses: c.remove_pauses,
            inserts,
        })
    }
}

#[async_trait]
impl Plan for CommitPlan {
    type Output = ();

    async fn apply(&self, c: &Collections, s: &mut ClientSession) -> TxResult<()> {
        if let Some(lease) = &self.done {
            let gone = c
                .queue
                .delete_one(docs::held(&lease.item_id, &lease.token))
                .session(&mut *s)
                .await?
                .deleted_count;
            if gone != 1 {
                return Err(StoreError::LeaseLost(lease.item_id.clone()).into());
            }
        }
        if let Some((id, filter, update)) = &self.run {
            let matched = c
                .runs
                .update_one(filter.clone(), update.clone())
                .session(&mut *s)
                .await?
                .matched_count;
            if matched != 1 {
                // The error aborts the transaction, which undoes the delete above.
                return Err(StoreError::Conflict(id.clone()).into());
            }
        }
        if !self.remove_run_work.is_empty() {
            let (queue, pauses) = docs::run_work(&self.remove_run_work);
            c.queue.delete_many(queue).session(&mut *s).await?;
            c.pauses.delete_many(pauses).session(&mut *s).await?;
        }
        if !self.remove_items.is_empty() {
            c.queue
                .delete_many(docs::keys_in(&self.remove_items))
                .session(&mut *s)
                .await?;
        }
        if !self.remove_pauses.is_empty() {
            c.pauses
                .delete_many(docs::ids_in(&self.remove_pauses))
                .session(&mut *s)
                .await?;
        }
        for u in &self.inserts {
            c.upsert(u, s).await?;
        }
        Ok(())
    }
}

struct ClaimPlan {
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    max: usize,
}

#[async_trait]
impl Plan for ClaimPlan {
    type Output = Vec<Claimed>;

    async fn apply(&self, c: &Collections, s: &mut ClientSession) -> TxResult<Vec<Claimed>> {
        let cursor = c
            .queue
            .find(docs::claimable(self.now))
            .sort(docs::claim_order())
            .limit(docs::candidate_limit(self.max))
            .projection(doc! { "body": 1 })
            .session(&mut *s)
            .await?;
        let candidates = collect_in(cursor, s)
            .await?
            .iter()
            .map(docs::read_item)
            .collect::<StoreResult<Vec<QueueItem>>>()?;
        // Both reads see the transaction's snapshot, so the slots in use can be read second,
        // and only when a candidate needs one.
        let mut leased_slots = Vec::new();
        if candidates.iter().any(|c| !c.concurrency.is_empty()) {
            let cursor = c
                .queue
                .find(docs::leased_with_slots(self.now))
                .projection(doc! { "concurrency": 1 })
                .session(&mut *s)
                .await?;
            for d in collect_in(cursor, s).await? {
                leased_slots.extend(docs::read_slots(&d)?);
            }
        }
        let picked = pick_claimable(
            candidates
                .iter()
                .map(|c| (c.id.as_str(), c.concurrency.as_slice())),
            leased_slots.iter(),
            self.max,
        );
        let picked: Vec<&QueueItem> = picked
            .iter()
            .filter_map(|id| candidates.iter().find(|c| c.id == *id))
            .collect();

        let slot_keys: std::collections::BTreeSet<&str> = picked
            .iter()
            .flat_map(|item| item.concurrency.iter().map(|slot| slot.key.as_str()))
            .collect();
        for key in slot_keys {
            let (filter, update) = docs::slot_claim(key);
            c.slots
                .update_one(filter, update)
                .upsert(true)
                .session(&mut *s)
                .await?;
        }

        let mut out = Vec::with_capacity(picked.len());
        for item in picked {
            let token = uuid::Uuid::now_v7().to_string();
            let (filter, update) = docs::lease(item, self.now, self.until, &token);
            let leased = c
                .queue
                .find_one_and_update(filter, update)
                .projection(doc! { "_id": 1 })
                .return_document(ReturnDocument::After)
                .session(&mut *s)
                .await?;
            // Always leased: the transaction's snapshot showed the item free, and a change
            // since would have failed the update with a write conflict.
            if leased.is_some() {
                out.push(Claimed {
                    item: item.clone(),
                    lease: Lease {
                        item_id: item.id.clone(),
                        token,
                    },
                });
            }
        }
        Ok(out)
    }
}

struct EnqueuePlan(Vec<Upsert>);

#[async_trait]
impl Plan for EnqueuePlan {
    type Output = ();

    async fn apply(&self, c: &Collections, s: &mut ClientSession) -> TxResult<()> {
        for u in &self.0 {
            c.upsert(u, s).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl RunStore for MongoRunStore {
    async fn ingest(&self, ingest: Ingest) -> StoreResult<IngestOutcome> {
        let plan = IngestPlan::new(&ingest, Utc::now())?;
        self.transact(plan).await
    }

    async fn pauses_for(&self, event_name: &str, now: DateTime<Utc>) -> StoreResult<Vec<Pause>> {
        let filter = docs::pauses_for(event_name, now);
        self.run(|inner| async move {
            let found: Vec<Document> = inner
                .collections
                .pauses
                .find(filter)
                .sort(doc! { "_id": 1 })
                .projection(doc! { "body": 1 })
                .await
                .map_err(driver)?
                .try_collect()
                .await
                .map_err(driver)?;
            found.iter().map(docs::read_pause).collect()
        })
        .await
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        max: usize,
        lease_for: Duration,
    ) -> StoreResult<Vec<Claimed>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let until = docs::lease_until(now, lease_for)?;
        self.transact(ClaimPlan { now, until, max }).await
    }

    async fn next_wake(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.run(|inner| async move {
            inner
                .collections
                .queue
                .find_one(doc! {})
                .sort(doc! { "wake_at": 1 })
                .projection(doc! { "wake_at": 1 })
                .await
                .map_err(driver)?
                .as_ref()
                .map(docs::read_wake)
                .transpose()
        })
        .await
    }

    async fn release_leases(&self) -> StoreResult<u64> {
        self.run(|inner| async move {
            let result = inner
                .collections
                .queue
                .update_many(docs::leased(), docs::release())
                .await
                .map_err(driver)?;
            Ok(result.matched_count)
        })
        .await
    }

    async fn load_run(&self, run_id: &str) -> StoreResult<Option<RunState>> {
        let id = run_id.to_owned();
        self.run(|inner| async move {
            inner
                .collections
                .runs
                .find_one(doc! { "_id": id })
                .projection(doc! { "state": 1, "rev": 1 })
                .await
                .map_err(driver)?
                .as_ref()
                .map(docs::read_run)
                .transpose()
        })
        .await
    }

    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        let plan = CommitPlan::new(commit, Utc::now())?;
        self.transact(plan).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunSummary>> {
        // `limit(0)` would mean no limit at all.
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let query = docs::run_list(filter);
        self.run(move |inner| async move {
            let found: Vec<Document> = inner
                .collections
                .runs
                .find(query)
                .sort(doc! { "_id": -1 })
                .limit(limit)
                .projection(doc! { "summary": 1 })
                .await
                .map_err(driver)?
                .try_collect()
                .await
                .map_err(driver)?;
            found.iter().map(docs::read_summary).collect()
        })
        .await
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> StoreResult<QueueDepth> {
        let [leased, due, scheduled] = docs::depth(now);
        self.run(|inner| async move {
            let queue = &inner.collections.queue;
            Ok(QueueDepth {
                leased: queue.count_documents(leased).await.map_err(driver)?,
                due: queue.count_documents(due).await.map_err(driver)?,
                scheduled: queue.count_documents(scheduled).await.map_err(driver)?,
            })
        })
        .await
    }

    async fn enqueue(&self, items: Vec<QueueItem>) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let upserts = items
            .iter()
            .map(docs::item_upsert)
            .collect::<StoreResult<Vec<_>>>()?;
        self.transact(EnqueuePlan(upserts)).await
    }

    async fn sweep(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<Swept> {
        if limit == 0 {
            return Ok(Swept::default());
        }
        self.run(move |inner| async move {
            let c = &inner.collections;
            // Finished runs have no work left but events to publish; anything else they left
            // goes first, so an interrupted sweep leaves a run to sweep again, never orphans.
            let runs = Inner::ids(&c.runs, docs::sweepable_runs(cutoff), limit).await?;
            if !runs.is_empty() {
                let (queue, pauses) = docs::run_work(&runs);
                c.queue.delete_many(queue).await.map_err(driver)?;
                c.pauses.delete_many(pauses).await.map_err(driver)?;
                c.runs
                    .delete_many(docs::ids_in(&runs))
                    .await
                    .map_err(driver)?;
            }
            let events = Inner::ids(&c.events, docs::sweepable_events(cutoff), limit).await?;
            if !events.is_empty() {
                c.events
                    .delete_many(docs::ids_in(&events))
                    .await
                    .map_err(driver)?;
            }
            Ok(Swept {
                runs: runs.len() as u64,
                events: events.len() as u64,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;
    use std::panic::AssertUnwindSafe;
    use std::sync::Mutex;

    /// Databases on the test server (`MONGODB_URI`, else the test peer), one per store,
    /// dropped at the end.
    struct Scratch {
        uri: String,
        client: Client,
        names: Mutex<Vec<String>>,
    }

    impl Scratch {
        fn database_name(&self) -> String {
            let name = format!("ticketing_runs_test_{}", uuid::Uuid::new_v4().simple());
            self.names.lock().expect("BUG: poisoned").push(name.clone());
            name
        }
    }

    /// Runs `test` on the test server, and drops its databases even when it fails.
    async fn with_mongo<F, Fut>(test: F)
    where
        F: FnOnce(Arc<Scratch>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let server = crate::test_mongo::mongo().await;
        let client = kit::connect(&server.uri, None)
            .await
            .expect("MongoDB client");
        let scratch = Arc::new(Scratch {
            uri: server.uri.clone(),
            client,
            names: Mutex::new(Vec::new()),
        });
        let outcome = AssertUnwindSafe(test(scratch.clone())).catch_unwind().await;
        let names = scratch.names.lock().expect("BUG: poisoned").clone();
        for name in names {
            scratch
                .client
                .database(&name)
                .drop()
                .await
                .expect("drop the test database");
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    #[tokio::test]
    async fn mongo_store_satisfies_the_contract() {
        with_mongo(|scratch| async move {
            contract::run_all(|| {
                let database = scratch.client.database(&scratch.database_name());
                async move {
                    Arc::new(
                        MongoRunStore::open(database)
                            .await
                            .expect("the MongoDB server must be usable"),
                    ) as Arc<dyn RunStore>
                }
            })
            .await;
        })
        .await;
    }

    /// Workers with clients of their own claim from one queue at once: no item is leased
    /// twice, and a concurrency slot never holds more than its limit. Their claims conflict and
    /// run again; on the test peer that needs patch 6 of `tests/mongo_peer/peer.py`, without
    /// which mongoeco retries inside the transaction whose commit failed, on its stale
    /// snapshot, until the retry budget runs out (`repro_stale_transaction.py`). The patched
    /// peer starts each retry afresh, as MongoDB does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_never_share_an_item_or_overfill_a_slot() {
        with_mongo(|scratch| async move {
            let name = scratch.database_name();
            let mut stores = Vec::new();
            for _ in 0..4 {
                stores.push(
                    MongoRunStore::connect(&scratch.uri, &name)
                        .await
                        .expect("connect"),
                );
            }
            let now = Utc::now();
            let mut items = Vec::new();
            for i in 0..40 {
                let mut item = QueueItem::new(
                    format!("call:r{i}:s"),
                    Some(format!("r{i}")),
                    super::super::store::ItemKind::Call {
                        step_id: "s".into(),
                        attempt: 0,
                    },
                    now - Duration::seconds(1),
                );
                if i % 2 == 0 {
                    item.concurrency = vec![super::super::store::Slot {
                        key: "fn:f:".into(),
                        limit: 2,
                    }];
                }
                items.push(item);
            }
            stores[0].enqueue(items).await.expect("enqueue");
            let mut workers = tokio::task::JoinSet::new();
            for store in stores {
                workers.spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let got = store
                            .claim(now, 3, Duration::hours(1))
                            .await
                            .expect("claim");
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|c| c.item));
                    }
                });
            }
            let mut claimed = Vec::new();
            while let Some(mine) = workers.join_next().await {
                claimed.extend(mine.expect("worker"));
            }
            let mut ids: Vec<&str> = claimed.iter().map(|i| i.id.as_str()).collect();
            ids.sort_unstable();
            let before = ids.len();
            ids.dedup();
            assert_eq!(ids.len(), before, "an item was leased twice");
            let slotted = claimed.iter().filter(|i| !i.concurrency.is_empty()).count();
            assert_eq!(slotted, 2, "the slot holds exactly its limit");
            assert_eq!(claimed.len() - slotted, 20, "every free item was claimed");
        })
        .await;
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_fast_and_plainly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let started = std::time::Instant::now();
        let err = MongoRunStore::connect(
            &format!("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=300"),
            "t",
        )
        .await
        .expect_err("nothing listens");
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("cannot reach MongoDB")),
            "{err:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
