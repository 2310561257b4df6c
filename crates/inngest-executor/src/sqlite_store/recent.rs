//! Runs this store committed a moment ago and is about to step again, kept in memory.
//!
//! Each step of a run loaded the run back from the file and parsed its JSON, though the same
//! process had written it a few milliseconds before. The file has one executor (see `leases`),
//! so the state it last committed is the state in the file, unless an operator's command
//! (`ticketing runs cancel`) wrote the run from another process: then the next commit here
//! finds another revision or a lost item and fails, which forgets the run, so it is read from
//! the file again (see [`RecentRuns::forget`]). Only the driver's step reads come from here
//! (`load_run_to_step`); what people see (`load_run`: the API, the commands) is read from the
//! file.
//!
//! Only runs with a step due at once are kept; a run that waits (for an event, a timer, a
//! retry's back-off) or has finished is forgotten. That keeps the set to the runs in flight, and
//! [`CAPACITY`] bounds it even if something is never forgotten.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use super::super::state::RunState;
use super::super::store::QueueItem;

/// At most this many runs are kept; reaching it forgets them all (they are read from the file
/// again), which costs one read each and keeps the code free of an eviction order. Measured
/// with the pipeline benchmark (10,000 tickets, most of them in flight at once): kept for
/// 4,096 runs, the resident memory after it was 98 MB instead of 55; for 256, 63 MB. A few
/// dozen cover the runs in flight at a steady pace, where a run's next step comes at once.
const CAPACITY: usize = 64;

/// A step due within this is "at once": the run will be loaded again in a moment.
const SOON: Duration = Duration::seconds(1);

#[derive(Debug, Default)]
pub(super) struct RecentRuns(Mutex<HashMap<String, RunState>>);

impl RecentRuns {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, RunState>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run as this store last committed it, if it is kept.
    pub(super) fn get(&self, run_id: &str) -> Option<RunState> {
        self.lock().get(run_id).cloned()
    }

    /// Records `run` as just committed (`rev` included): kept if `enqueued` holds a step of it
    /// due by `now` + [`SOON`], forgotten otherwise.
    pub(super) fn committed(&self, run: RunState, enqueued: &[QueueItem], now: DateTime<Utc>) {
        let due_soon = !run.status.is_terminal()
            && enqueued
                .iter()
                .any(|i| i.run_id.as_deref() == Some(run.id.as_str()) && i.due_at <= now + SOON);
        let mut runs = self.lock();
        if !due_soon {
            runs.remove(&run.id);
            return;
        }
        if runs.len() >= CAPACITY && !runs.contains_key(&run.id) {
            runs.clear();
        }
        runs.insert(run.id.clone(), run);
    }

    /// Forgets a run whose stored revision may differ from the kept one.
    pub(super) fn forget(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}
