//! Counters of the executor. Each one is kept in an atomic (read with `Executor::stats()`) and
//! reported through the `metrics` facade, so whatever recorder the app installs (Prometheus)
//! exports them:
//!
//! | metric | kind |
//! |---|---|
//! | `inngest_executor_events_total{outcome="accepted"\|"duplicate"}` | counter |
//! | `inngest_executor_runs_started_total` | counter |
//! | `inngest_executor_runs_finished_total{status="completed"\|"failed"\|"cancelled"}` | counter |
//! | `inngest_executor_calls_total` | counter |
//! | `inngest_executor_call_duration_seconds` | histogram |
//! | `inngest_executor_steps_total{outcome="completed"\|"failed"}` | counter |
//! | `inngest_executor_retries_total` | counter |
//! | `inngest_executor_queue_depth{state="due"\|"scheduled"\|"leased"}` | gauge |
//!
//! Every counter series exists from the start at 0, so a dashboard or an alert on failures
//! sees a value before the first failure happens.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::store::QueueDepth;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    events_accepted: AtomicU64,
    events_duplicate: AtomicU64,
    runs_started: AtomicU64,
    runs_completed: AtomicU64,
    runs_failed: AtomicU64,
    runs_cancelled: AtomicU64,
    calls: AtomicU64,
    steps_completed: AtomicU64,
    steps_failed: AtomicU64,
    retries: AtomicU64,
}

/// Describes the metrics and creates every counter series at 0. Idempotent.
pub(crate) fn register_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "inngest_executor_events_total",
        "Events received by the embedded executor, by outcome (duplicates are ignored)"
    );
    describe_counter!(
        "inngest_executor_runs_started_total",
        "Function runs started"
    );
    describe_counter!(
        "inngest_executor_runs_finished_total",
        "Function runs finished, by final status"
    );
    describe_counter!(
        "inngest_executor_calls_total",
        "Calls to the serve endpoint (one per step attempt)"
    );
    describe_histogram!(
        "inngest_executor_call_duration_seconds",
        Unit::Seconds,
        "Duration of calls to the serve endpoint"
    );
    describe_counter!(
        "inngest_executor_steps_total",
        "Steps finished, by outcome (failed: out of attempts)"
    );
    describe_counter!(
        "inngest_executor_retries_total",
        "Failed step or function attempts scheduled to run again"
    );
    describe_gauge!(
        "inngest_executor_queue_depth",
        "Queue items: due now, scheduled for later (timers, backoffs, timeouts), leased"
    );
    for outcome in ["accepted", "duplicate"] {
        metrics::counter!("inngest_executor_events_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("inngest_executor_runs_started_total").increment(0);
    for status in ["completed", "failed", "cancelled"] {
        metrics::counter!("inngest_executor_runs_finished_total", "status" => status).increment(0);
    }
    metrics::counter!("inngest_executor_calls_total").increment(0);
    for outcome in ["completed", "failed"] {
        metrics::counter!("inngest_executor_steps_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("inngest_executor_retries_total").increment(0);
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn event(&self, duplicate: bool) {
        let (c, outcome) = if duplicate {
            (&self.events_duplicate, "duplicate")
        } else {
            (&self.events_accepted, "accepted")
        };
        bump(c, 1);
        metrics::counter!("inngest_executor_events_total", "outcome" => outcome).increment(1);
    }

    pub(crate) fn runs_started(&self, n: u64) {
        if n > 0 {
            bump(&self.runs_started, n);
            metrics::counter!("inngest_executor_runs_started_total").increment(n);
        }
    }

    pub(crate) fn run_finished(&self, status: super::state::RunStatus) {
        use super::state::RunStatus;
        let c = match status {
            RunStatus::Completed => &self.runs_completed,
            RunStatus::Failed => &self.runs_failed,
            RunStatus::Cancelled => &self.runs_cancelled,
            RunStatus::Queued | RunStatus::Running => return,
        };
        bump(c, 1);
        metrics::counter!("inngest_executor_runs_finished_total", "status" => status.as_str())
            .increment(1);
    }

    pub(crate) fn call(&self, seconds: f64) {
        bump(&self.calls, 1);
        metrics::counter!("inngest_executor_calls_total").increment(1);
        metrics::histogram!("inngest_executor_call_duration_seconds").record(seconds);
    }

    pub(crate) fn step(&self, failed: bool) {
        let (c, outcome) = if failed {
            (&self.steps_failed, "failed")
        } else {
            (&self.steps_completed, "completed")
        };
        bump(c, 1);
        metrics::counter!("inngest_executor_steps_total", "outcome" => outcome).increment(1);
    }

    pub(crate) fn retry(&self) {
        bump(&self.retries, 1);
        metrics::counter!("inngest_executor_retries_total").increment(1);
    }

    pub(crate) fn snapshot(&self, queue: QueueDepth) -> ExecutorStats {
        metrics::gauge!("inngest_executor_queue_depth", "state" => "due").set(queue.due as f64);
        metrics::gauge!("inngest_executor_queue_depth", "state" => "scheduled")
            .set(queue.scheduled as f64);
        metrics::gauge!("inngest_executor_queue_depth", "state" => "leased")
            .set(queue.leased as f64);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExecutorStats {
            events_accepted: get(&self.events_accepted),
            events_duplicate: get(&self.events_duplicate),
            runs_started: get(&self.runs_started),
            runs_completed: get(&self.runs_completed),
            runs_failed: get(&self.runs_failed),
            runs_cancelled: get(&self.runs_cancelled),
            calls: get(&self.calls),
            steps_completed: get(&self.steps_completed),
            steps_failed: get(&self.steps_failed),
            retries: get(&self.retries),
            queue,
        }
    }
}

/// Counts since this executor was created, plus the current queue depth from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExecutorStats {
    pub events_accepted: u64,
    pub events_duplicate: u64,
    pub runs_started: u64,
    pub runs_completed: u64,
    pub runs_failed: u64,
    pub runs_cancelled: u64,
    pub calls: u64,
    pub steps_completed: u64,
    pub steps_failed: u64,
    pub retries: u64,
    pub queue: QueueDepth,
}
