//! The executor's persistence port, [`RunStore`]; [`MemoryStore`] keeps it in memory.
//!
//! Everything the executor needs to survive a restart goes through here: seen event ids (for
//! deduplication), runs with their memoized steps, queue items (calls, timers, timeouts,
//! pending publishes, cron ticks) with a due time and a lease, and wait-for-event pauses.
//! Each state change is one [`Commit`], applied atomically; a run is written with an
//! optimistic revision check so two workers never overwrite each other.

use std::collections::HashMap;
use std::sync::Arc;

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
    /// The run's new state, shared with the caller, who goes on with it after the commit.
    pub run: Option<Arc<RunState>>,
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
    /// Commits like [`RunStore::commit`] and, in the same step, leases `keep` (the id of one of
    /// the items the commit enqueues) to the committer until `until`: the worker that ran a
    /// step goes on to the run's next one without claiming it, and no other worker can take it
    /// meanwhile. `None` when the item was not inserted (its key was live already) or the store
    /// cannot do this; the item is then claimed like any other.
    async fn commit_keeping(
        &self,
        commit: Commit,
        keep: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<Lease>> {
        let _ = (keep, until);
        self.commit(commit).await.map(|()| None)
    }
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
    let mut picker = Picker::new(leased_slots, max);
    for (id, concurrency) in candidates {
        if picker.is_full() {
            break;
        }
        if picker.fits(concurrency) {
            picker.pick(id, concurrency);
        }
    }
    picker.into_picked()
}

/// Claim-order picking, one candidate at a time, so a store can stop reading candidates as
/// soon as it has enough.
pub(crate) struct Picker {
    in_use: HashMap<String, u32>,
    max: usize,
    picked: Vec<String>,
}

impl Picker {
    pub(crate) fn new<'a>(leased_slots: impl Iterator<Item = &'a Slot>, max: usize) -> Self {
        let mut in_use: HashMap<String, u32> = HashMap::new();
        for slot in leased_slots {
            *in_use.entry(slot.key.clone()).or_default() += 1;
        }
        Picker {
            in_use,
            max,
            picked: Vec::with_capacity(max),
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.picked.len() >= self.max
    }

    /// Whether a call occupying `concurrency` has room in every one of its slots.
    pub(crate) fn fits(&self, concurrency: &[Slot]) -> bool {
        concurrency
            .iter()
            .all(|s| self.in_use.get(s.key.as_str()).copied().unwrap_or(0) < s.limit)
    }

    /// Picks `id`, its slots counted as taken from now on.
    pub(crate) fn pick(&mut self, id: &str, concurrency: &[Slot]) {
        for s in concurrency {
            *self.in_use.entry(s.key.clone()).or_default() += 1;
        }
        self.picked.push(id.to_owned());
    }

    /// The picked ids, in claim order.
    pub(crate) fn into_picked(self) -> Vec<String> {
        self.picked
    }
}

mod memory;
pub use memory::MemoryStore;

#[cfg(test)]
pub(crate) mod contract;
