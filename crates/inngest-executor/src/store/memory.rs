//! [`MemoryStore`]: the run store in memory, for tests and for a process that need not survive
//! a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::state::RunState;

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

    /// Applies a commit: the checks first, then the writes, so it is all or nothing.
    fn commit(&mut self, c: Commit) -> StoreResult<()> {
        if let Some(lease) = &c.done {
            let held = self
                .items
                .get(&lease.item_id)
                .is_some_and(|mi| mi.lease.as_ref().is_some_and(|(t, _)| *t == lease.token));
            if !held {
                return Err(StoreError::LeaseLost(lease.item_id.clone()));
            }
        }
        if let Some(run) = &c.run {
            let current = self.runs.get(&run.id).map(|r| r.rev);
            if current != Some(run.rev) {
                return Err(StoreError::Conflict(run.id.clone()));
            }
        }
        // Checks passed: nothing below can fail, so the commit is all or nothing.
        if let Some(lease) = &c.done {
            self.remove_item(&lease.item_id);
        }
        if let Some(run) = c.run {
            let mut run = Arc::unwrap_or_clone(run);
            run.rev += 1;
            self.runs.insert(run.id.clone(), run);
        }
        for run_id in &c.remove_run_work {
            let ids: Vec<String> = self
                .items
                .values()
                .filter(|mi| mi.item.run_id.as_deref() == Some(run_id.as_str()))
                .filter(|mi| !matches!(mi.item.kind, ItemKind::Publish { .. }))
                .map(|mi| mi.item.id.clone())
                .collect();
            for id in ids {
                self.remove_item(&id);
            }
            self.pauses.retain(|_, p| p.run_id != *run_id);
        }
        for key in &c.remove_items {
            if let Some(id) = self.keys.get(key).cloned() {
                self.remove_item(&id);
            }
        }
        for id in &c.remove_pauses {
            self.pauses.remove(id);
        }
        for run in c.new_runs {
            self.runs.entry(run.id.clone()).or_insert(run);
        }
        for ev in &c.events {
            if let Some(id) = ev.get("id").and_then(Value::as_str) {
                self.events.entry(id.to_string()).or_insert_with(Utc::now);
            }
        }
        for item in c.enqueue {
            self.insert_item(item);
        }
        for p in c.pauses {
            self.pauses.insert(p.id.clone(), p);
        }
        Ok(())
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
        self.lock()?.commit(c)
    }

    async fn commit_keeping(
        &self,
        c: Commit,
        keep: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<Lease>> {
        let mut m = self.lock()?;
        m.commit(c)?;
        // Absent when its key was live already: the commit did not insert it.
        Ok(m.items.get_mut(keep).map(|mi| {
            let token = uuid::Uuid::now_v7().to_string();
            mi.lease = Some((token.clone(), until));
            Lease {
                item_id: keep.to_owned(),
                token,
            }
        }))
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
mod tests {
    use super::*;
    use crate::store::contract;

    #[tokio::test]
    async fn memory_store_satisfies_the_contract() {
        contract::run_all(|| async {
            std::sync::Arc::new(MemoryStore::new()) as std::sync::Arc<dyn RunStore>
        })
        .await;
    }
}
