//! The executor's persistence port, [`RunStore`], and an in-memory implementation.
//!
//! Everything the executor needs to survive a restart goes through here: seen event ids (for
//! deduplication), runs with their memoized steps, queue items (calls, timers, timeouts,
//! pending publishes, cron ticks) with a due time and a lease, and wait-for-event pauses.
//! Each state change is one [`Commit`], applied atomically; a run is written with an
//! optimistic revision check so two workers never overwrite each other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::state::{ResumeReason, RunState, RunStatus};

#[derive(Debug, Error)]
pub enum StoreError {
    /// The run's revision changed since it was loaded.
    #[error("run {0} was changed concurrently")]
    Conflict(String),
    /// The processed queue item is gone or leased by someone else.
    #[error("lease on queue item {0} was lost")]
    LeaseLost(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A concurrency slot a call occupies while it is leased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub key: String,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemKind {
    /// Call the SDK for `step_id` of the run.
    Call { step_id: String, attempt: u32 },
    /// Resume a pending step with `value`; a wait timeout also removes its pause.
    Resume {
        step_id: String,
        value: Value,
        reason: ResumeReason,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pause_id: Option<String>,
    },
    /// Publish events produced by a run (finish events) once, durably.
    Publish { events: Vec<Value> },
    /// Fire a cron trigger and schedule the next tick.
    Cron {
        function_id: String,
        schedule: String,
    },
    /// Cancel the run (a `cancel` event matched).
    Cancel { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    pub id: String,
    /// At most one live item per key; inserting a second one is a no-op.
    pub key: String,
    pub run_id: Option<String>,
    pub kind: ItemKind,
    pub due_at: DateTime<Utc>,
    pub concurrency: Vec<Slot>,
}

impl QueueItem {
    pub fn new(
        key: String,
        run_id: Option<String>,
        kind: ItemKind,
        due_at: DateTime<Utc>,
    ) -> QueueItem {
        QueueItem {
            id: uuid::Uuid::now_v7().to_string(),
            key,
            run_id,
            kind,
            due_at,
            concurrency: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub item_id: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub item: QueueItem,
    pub lease: Lease,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PauseKind {
    /// `step.waitForEvent`: the step resumes with the matching event.
    Wait { step_id: String },
    /// A function's `cancel` setting: the run is cancelled.
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    pub id: String,
    pub run_id: String,
    pub kind: PauseKind,
    /// Name of the awaited event.
    pub event: String,
    /// The `if` expression; `event` is the run's trigger, `async` the incoming event.
    pub condition: Option<String>,
    pub trigger_event: Value,
    pub expires_at: DateTime<Utc>,
}

/// One atomic state change. Applied in this order: the processed item is removed (or
/// [`StoreError::LeaseLost`]), the run is written if its revision still matches (or
/// [`StoreError::Conflict`]), work of finished runs and listed items and pauses are removed,
/// then new runs, events, items and pauses are inserted (items and events ignore duplicates).
#[derive(Debug, Default)]
pub struct Commit {
    pub done: Option<Lease>,
    pub run: Option<RunState>,
    pub new_runs: Vec<RunState>,
    pub events: Vec<Value>,
    pub remove_run_work: Vec<String>,
    pub remove_items: Vec<String>,
    pub remove_pauses: Vec<String>,
    pub enqueue: Vec<QueueItem>,
    pub pauses: Vec<Pause>,
}

/// An incoming event with the runs it starts and the pauses it consumes.
#[derive(Debug)]
pub struct Ingest {
    pub event: Value,
    pub event_id: String,
    pub runs: Vec<RunState>,
    pub items: Vec<QueueItem>,
    /// Pauses of the new runs (their `cancel` settings).
    pub pauses: Vec<Pause>,
    /// Pauses to consume: the item is enqueued only if the pause still exists.
    pub resumes: Vec<(String, QueueItem)>,
    /// Queue keys to drop together with consumed pauses (their timeouts).
    pub remove_items: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Duplicate,
    Accepted { resumed: usize },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub function_id: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs whose id sorts before this one (ids are time-ordered UUID v7).
    pub before: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub function_id: String,
    pub status: RunStatus,
    pub event_name: String,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl RunSummary {
    pub fn of(run: &RunState) -> RunSummary {
        RunSummary {
            id: run.id.clone(),
            function_id: run.function_id.clone(),
            status: run.status,
            event_name: run.event_name().to_string(),
            created_at: run.created_at,
            ended_at: run.ended_at,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Items due now and not leased.
    pub due: u64,
    /// Items due later (timers, backoffs, timeouts).
    pub scheduled: u64,
    /// Items being worked on.
    pub leased: u64,
}

/// What one [`RunStore::sweep`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Finished runs (completed, failed, cancelled).
    pub runs: u64,
    /// Event ids kept for de-duplication.
    pub events: u64,
}

#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records an event unless its id was seen, with the runs it starts and pauses it consumes.
    async fn ingest(&self, ingest: Ingest) -> StoreResult<IngestOutcome>;
    /// Live pauses waiting for `event_name`.
    async fn pauses_for(&self, event_name: &str, now: DateTime<Utc>) -> StoreResult<Vec<Pause>>;
    /// Leases up to `max` due items, oldest first, skipping calls whose concurrency slots are full.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        max: usize,
        lease_for: Duration,
    ) -> StoreResult<Vec<Claimed>>;
    /// When the next item becomes due or a lease expires.
    async fn next_wake(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// Drops every lease (start-up of the single process that owns the queue).
    async fn release_leases(&self) -> StoreResult<u64>;
    async fn load_run(&self, run_id: &str) -> StoreResult<Option<RunState>>;
    async fn commit(&self, commit: Commit) -> StoreResult<()>;
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunSummary>>;
    async fn queue_depth(&self, now: DateTime<Utc>) -> StoreResult<QueueDepth>;
    /// Inserts items whose key is not live yet.
    async fn enqueue(&self, items: Vec<QueueItem>) -> StoreResult<()>;
    /// Deletes up to `limit` runs that finished before `cutoff` (with any work they left but
    /// events still to publish) and up to `limit` event ids received before it. Runs still
    /// queued, running or waiting are never touched, however old.
    async fn sweep(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<Swept>;
}

/// Picks claimable items: due, not leased, and with room in every concurrency slot.
/// Candidates are `(id, concurrency)` pairs in claim order.
pub(crate) fn pick_claimable<'a>(
    candidates: impl Iterator<Item = (&'a str, &'a [Slot])>,
    leased_slots: impl Iterator<Item = &'a Slot>,
    max: usize,
) -> Vec<String> {
    let mut in_use: HashMap<&str, u32> = HashMap::new();
    for slot in leased_slots {
        *in_use.entry(slot.key.as_str()).or_default() += 1;
    }
    let mut picked = Vec::new();
    for (id, concurrency) in candidates {
        if picked.len() >= max {
            break;
        }
        let fits = concurrency
            .iter()
            .all(|s| in_use.get(s.key.as_str()).copied().unwrap_or(0) < s.limit);
        if fits {
            for s in concurrency {
                *in_use.entry(s.key.as_str()).or_default() += 1;
            }
            picked.push(id.to_owned());
        }
    }
    picked
}

#[derive(Debug, Clone)]
struct MemItem {
    item: QueueItem,
    lease: Option<(String, DateTime<Utc>)>,
}

#[derive(Default)]
struct Mem {
    /// Seen event ids, with when they arrived.
    events: HashMap<String, DateTime<Utc>>,
    runs: BTreeMap<String, RunState>,
    items: HashMap<String, MemItem>,
    keys: HashMap<String, String>,
    pauses: HashMap<String, Pause>,
}

impl Mem {
    fn insert_item(&mut self, item: QueueItem) {
        if self.keys.contains_key(&item.key) {
            return;
        }
        self.keys.insert(item.key.clone(), item.id.clone());
        self.items
            .insert(item.id.clone(), MemItem { item, lease: None });
    }

    fn remove_item(&mut self, id: &str) {
        if let Some(m) = self.items.remove(id) {
            self.keys.remove(&m.item.key);
        }
    }
}

/// A [`RunStore`] in memory, for unit tests and throwaway executors.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Mem>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, Mem>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn ingest(&self, ingest: Ingest) -> StoreResult<IngestOutcome> {
        let mut m = self.lock()?;
        if m.events.contains_key(&ingest.event_id) {
            return Ok(IngestOutcome::Duplicate);
        }
        m.events.insert(ingest.event_id.clone(), Utc::now());
        for run in ingest.runs {
            m.runs.insert(run.id.clone(), run);
        }
        for item in ingest.items {
            m.insert_item(item);
        }
        for p in ingest.pauses {
            m.pauses.insert(p.id.clone(), p);
        }
        let mut resumed = 0;
        for (pause_id, item) in ingest.resumes {
            if m.pauses.remove(&pause_id).is_some() {
                m.insert_item(item);
                resumed += 1;
            }
        }
        for key in ingest.remove_items {
            if let Some(id) = m.keys.get(&key).cloned() {
                m.remove_item(&id);
            }
        }
        Ok(IngestOutcome::Accepted { resumed })
    }

    async fn pauses_for(&self, event_name: &str, now: DateTime<Utc>) -> StoreResult<Vec<Pause>> {
        let m = self.lock()?;
        let mut out: Vec<Pause> = m
            .pauses
            .values()
            .filter(|p| p.event == event_name && p.expires_at > now)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        max: usize,
        lease_for: Duration,
    ) -> StoreResult<Vec<Claimed>> {
        let mut m = self.lock()?;
        let is_leased = |mi: &MemItem| mi.lease.as_ref().is_some_and(|(_, until)| *until > now);
        let mut candidates: Vec<&MemItem> = m
            .items
            .values()
            .filter(|mi| mi.item.due_at <= now && !is_leased(mi))
            .collect();
        candidates.sort_by(|a, b| (a.item.due_at, &a.item.id).cmp(&(b.item.due_at, &b.item.id)));
        let leased_slots = m
            .items
            .values()
            .filter(|mi| is_leased(mi))
            .flat_map(|mi| mi.item.concurrency.iter());
        let picked = pick_claimable(
            candidates
                .into_iter()
                .map(|mi| (mi.item.id.as_str(), mi.item.concurrency.as_slice())),
            leased_slots,
            max,
        );
        let mut out = Vec::with_capacity(picked.len());
        for id in picked {
            let token = uuid::Uuid::now_v7().to_string();
            if let Some(mi) = m.items.get_mut(&id) {
                mi.lease = Some((token.clone(), now + lease_for));
                out.push(Claimed {
                    item: mi.item.clone(),
                    lease: Lease { item_id: id, token },
                });
            }
        }
        Ok(out)
    }

    async fn next_wake(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let m = self.lock()?;
        Ok(m.items
            .values()
            .map(|mi| match &mi.lease {
                Some((_, until)) => mi.item.due_at.max(*until),
                None => mi.item.due_at,
            })
            .min())
    }

    async fn release_leases(&self) -> StoreResult<u64> {
        let mut m = self.lock()?;
        let mut n = 0;
        for mi in m.items.values_mut() {
            if mi.lease.take().is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn load_run(&self, run_id: &str) -> StoreResult<Option<RunState>> {
        Ok(self.lock()?.runs.get(run_id).cloned())
    }

    async fn commit(&self, c: Commit) -> StoreResult<()> {
        let mut m = self.lock()?;
        if let Some(lease) = &c.done {
            let held = m
                .items
                .get(&lease.item_id)
                .is_some_and(|mi| mi.lease.as_ref().is_some_and(|(t, _)| *t == lease.token));
            if !held {
                return Err(StoreError::LeaseLost(lease.item_id.clone()));
            }
        }
        if let Some(run) = &c.run {
            let current = m.runs.get(&run.id).map(|r| r.rev);
            if current != Some(run.rev) {
                return Err(StoreError::Conflict(run.id.clone()));
            }
        }
        // Checks passed: nothing below can fail, so the commit is all or nothing.
        if let Some(lease) = &c.done {
            m.remove_item(&lease.item_id);
        }
        if let Some(mut run) = c.run {
            run.rev += 1;
            m.runs.insert(run.id.clone(), run);
        }
        for run_id in &c.remove_run_work {
            let ids: Vec<String> = m
                .items
                .values()
                .filter(|mi| mi.item.run_id.as_deref() == Some(run_id.as_str()))
                .filter(|mi| !matches!(mi.item.kind, ItemKind::Publish { .. }))
                .map(|mi| mi.item.id.clone())
                .collect();
            for id in ids {
                m.remove_item(&id);
            }
            m.pauses.retain(|_, p| p.run_id != *run_id);
        }
        for key in &c.remove_items {
            if let Some(id) = m.keys.get(key).cloned() {
                m.remove_item(&id);
            }
        }
        for id in &c.remove_pauses {
            m.pauses.remove(id);
        }
        for run in c.new_runs {
            m.runs.entry(run.id.clone()).or_insert(run);
        }
        for ev in &c.events {
            if let Some(id) = ev.get("id").and_then(Value::as_str) {
                m.events.entry(id.to_string()).or_insert_with(Utc::now);
            }
        }
        for item in c.enqueue {
            m.insert_item(item);
        }
        for p in c.pauses {
            m.pauses.insert(p.id.clone(), p);
        }
        Ok(())
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunSummary>> {
        let m = self.lock()?;
        Ok(m.runs
            .values()
            .rev()
            .filter(|r| {
                filter
                    .function_id
                    .as_ref()
                    .is_none_or(|f| *f == r.function_id)
            })
            .filter(|r| filter.status.is_none_or(|s| s == r.status))
            .filter(|r| filter.before.as_ref().is_none_or(|b| r.id < *b))
            .take(filter.limit)
            .map(RunSummary::of)
            .collect())
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> StoreResult<QueueDepth> {
        let m = self.lock()?;
        let mut d = QueueDepth::default();
        for mi in m.items.values() {
            if mi.lease.as_ref().is_some_and(|(_, until)| *until > now) {
                d.leased += 1;
            } else if mi.item.due_at <= now {
                d.due += 1;
            } else {
                d.scheduled += 1;
            }
        }
        Ok(d)
    }

    async fn enqueue(&self, items: Vec<QueueItem>) -> StoreResult<()> {
        let mut m = self.lock()?;
        for item in items {
            m.insert_item(item);
        }
        Ok(())
    }

    async fn sweep(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<Swept> {
        let mut m = self.lock()?;
        let runs: Vec<String> = m
            .runs
            .values()
            .filter(|r| r.status.is_terminal() && r.ended_at.is_some_and(|t| t < cutoff))
            .take(limit)
            .map(|r| r.id.clone())
            .collect();
        for id in &runs {
            m.runs.remove(id);
            let work: Vec<String> = m
                .items
                .values()
                .filter(|mi| mi.item.run_id.as_deref() == Some(id.as_str()))
                .filter(|mi| !matches!(mi.item.kind, ItemKind::Publish { .. }))
                .map(|mi| mi.item.id.clone())
                .collect();
            for item in work {
                m.remove_item(&item);
            }
            m.pauses.retain(|_, p| p.run_id != *id);
        }
        let events: Vec<String> = m
            .events
            .iter()
            .filter(|(_, received)| **received < cutoff)
            .take(limit)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &events {
            m.events.remove(id);
        }
        Ok(Swept {
            runs: runs.len() as u64,
            events: events.len() as u64,
        })
    }
}

#[cfg(test)]
pub(crate) mod contract;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_satisfies_the_contract() {
        contract::run_all(|| async {
            std::sync::Arc::new(MemoryStore::new()) as std::sync::Arc<dyn RunStore>
        })
        .await;
    }
}
