//! [`Executor`]: the public face of the embedded executor (see the module docs).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use thiserror::Error;

use super::clock::{Clock, SystemClock};
use super::events::{self, EventError};
use super::function::{FunctionDef, RegisterError, parse_function};
use super::state::{self, Ctx, Input, RunState};
use super::stats::{Counters, ExecutorStats};
use super::store::{
    Commit, ItemKind, QueueItem, RunFilter, RunStore, RunSummary, StoreError, Swept,
};
use super::transport::Transport;
use inngest_axum::SigningKey;

mod ingest;
pub(crate) use ingest::{cron_event, cron_key, invoke_event, parent_of, timeout_key};

#[derive(Debug, Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("run {run_id} is already {status}")]
    RunFinished {
        run_id: String,
        status: &'static str,
    },
    #[error("function {0} is not registered")]
    UnknownFunction(String),
}

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("event #{index}: {error}")]
    InvalidEvent { index: usize, error: EventError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the executor answers as, on sync requests (`X-Inngest-Server-Kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Dev,
    Cloud,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Dev => "dev",
            ServerKind::Cloud => "cloud",
        }
    }
}

#[derive(Clone)]
pub struct ExecutorOptions {
    /// Signs call requests like Inngest Cloud when set. The application's embedded mode leaves
    /// it unset: its calls go to the handler in process ([`crate::HandlerTransport`]).
    pub signing_key: Option<SigningKey>,
    pub server_kind: ServerKind,
    /// Leave `ctx.fn_id` out of call requests; needed for SDKs that checkpoint when they see it
    /// (JS SDK v4), since this executor has no checkpoint API.
    pub omit_fn_id: bool,
    /// Calls in flight at once.
    pub workers: usize,
    /// Longest wait for one call's answer; a call that takes longer counts as a failed
    /// attempt and is retried.
    pub call_timeout: std::time::Duration,
    /// How long a claimed item stays leased; a crashed worker's item is retaken after it.
    /// Must exceed `call_timeout`.
    pub lease: Duration,
    /// Upper bound of the random delay added to retry backoffs (Inngest: 30 s).
    pub max_retry_jitter: Duration,
    /// Longest idle sleep of the background loop, a safety net for work written by others.
    pub idle_poll: std::time::Duration,
    pub clock: Arc<dyn Clock>,
    /// How long finished runs and the event ids kept for de-duplication are kept; `None`
    /// keeps them for ever. The background loop sweeps every [`ExecutorOptions::sweep_every`].
    pub retention: Option<std::time::Duration>,
    pub sweep_every: std::time::Duration,
}

impl Default for ExecutorOptions {
    fn default() -> ExecutorOptions {
        ExecutorOptions {
            signing_key: None,
            server_kind: ServerKind::Dev,
            omit_fn_id: false,
            workers: 8,
            call_timeout: std::time::Duration::from_secs(300),
            lease: Duration::minutes(6),
            max_retry_jitter: Duration::seconds(30),
            idle_poll: std::time::Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            retention: None,
            sweep_every: std::time::Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for ExecutorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorOptions")
            .field("signing_key", &self.signing_key)
            .field("server_kind", &self.server_kind)
            .field("workers", &self.workers)
            .field("call_timeout", &self.call_timeout)
            .field("lease", &self.lease)
            .field("max_retry_jitter", &self.max_retry_jitter)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn RunStore>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) options: ExecutorOptions,
    pub(crate) functions: RwLock<HashMap<String, Arc<FunctionDef>>>,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) counters: Counters,
}

/// The embedded Inngest executor. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Executor {
    pub(crate) inner: Arc<Inner>,
}

/// A background loop started by [`Executor::spawn`].
pub struct ExecutorHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ExecutorHandle {
    /// Stops claiming work, lets calls in flight finish, and waits for the loop to end.
    pub async fn shutdown(self) {
        // The loop may already have ended, in which case there is nobody to tell.
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "executor loop panicked");
        }
    }

    /// Ends the loop at once, as a crash would; leased items are retaken later.
    pub fn abort(self) {
        self.task.abort();
    }
}

impl Executor {
    pub fn new(
        store: Arc<dyn RunStore>,
        transport: Arc<dyn Transport>,
        options: ExecutorOptions,
    ) -> Executor {
        super::stats::register_metrics();
        Executor {
            inner: Arc::new(Inner {
                store,
                transport,
                options,
                functions: RwLock::new(HashMap::new()),
                wake: tokio::sync::Notify::new(),
                counters: Counters::default(),
            }),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.options.clock.now()
    }

    pub(crate) fn function(&self, id: &str) -> Option<Arc<FunctionDef>> {
        self.inner
            .functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn all_functions(&self) -> Vec<Arc<FunctionDef>> {
        self.inner
            .functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Replaces the functions of `app_id` with `functions` (the `functions` array of a register
    /// body). Every function is validated first — triggers, expressions, crons — and nothing
    /// changes if one is invalid. Cron triggers get their first tick queued.
    pub async fn register(&self, app_id: &str, functions: Vec<Value>) -> Result<(), RegisterError> {
        let mut defs = Vec::with_capacity(functions.len());
        for (i, raw) in functions.iter().enumerate() {
            let def = parse_function(app_id, i, raw)?;
            if defs.iter().any(|d: &FunctionDef| d.id == def.id) {
                return Err(RegisterError::DuplicateId { function: def.id });
            }
            defs.push(def);
        }
        let now = self.now();
        let mut ticks = Vec::new();
        for def in &defs {
            for (source, schedule) in def.cron_schedules() {
                if let Some(next) = schedule.next_after(now) {
                    ticks.push(QueueItem::new(
                        cron_key(&def.id, source),
                        None,
                        ItemKind::Cron {
                            function_id: def.id.clone(),
                            schedule: source.to_string(),
                        },
                        next,
                    ));
                }
            }
        }
        {
            let mut map = self
                .inner
                .functions
                .write()
                .unwrap_or_else(|p| p.into_inner());
            map.retain(|_, d| d.app_id != app_id);
            for def in defs {
                tracing::debug!(function = %def.id, "registered");
                map.insert(def.id.clone(), Arc::new(def));
            }
        }
        if !ticks.is_empty() {
            self.inner
                .store
                .enqueue(ticks)
                .await
                .map_err(|e| RegisterError::Invalid {
                    function: app_id.to_string(),
                    detail: format!("cannot schedule cron triggers: {e}"),
                })?;
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Ids of the registered functions, sorted.
    pub fn function_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.all_functions().iter().map(|d| d.id.clone()).collect();
        ids.sort();
        ids
    }

    /// Accepts events: fills missing ids and timestamps, skips ids already seen, starts the
    /// runs whose triggers match, and resumes or cancels the runs whose pauses match. Returns
    /// the event ids in order. Each event is committed before this returns.
    pub async fn publish(&self, events: Vec<Value>) -> Result<Vec<String>, PublishError> {
        let now = self.now();
        let normalized = events
            .into_iter()
            .enumerate()
            .map(|(index, e)| {
                events::normalize(e, now)
                    .map_err(|error| PublishError::InvalidEvent { index, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut ids = Vec::with_capacity(normalized.len());
        for event in normalized {
            ids.push(events::id_of(&event).to_string());
            self.ingest_event(event, now).await?;
        }
        self.inner.wake.notify_one();
        Ok(ids)
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunSummary>, ExecutorError> {
        let filter = RunFilter {
            limit: if filter.limit == 0 {
                50
            } else {
                filter.limit.min(1000)
            },
            ..filter
        };
        Ok(self.inner.store.list_runs(&filter).await?)
    }

    /// One run with its memoized steps and its history (every attempt, timing and error).
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunState>, ExecutorError> {
        Ok(self.inner.store.load_run(run_id).await?)
    }

    /// Starts a new run of the same function with the same event; returns its id.
    pub async fn rerun(&self, run_id: &str) -> Result<String, ExecutorError> {
        let old = self
            .inner
            .store
            .load_run(run_id)
            .await?
            .ok_or_else(|| ExecutorError::RunNotFound(run_id.to_string()))?;
        let def = self
            .function(&old.function_id)
            .ok_or_else(|| ExecutorError::UnknownFunction(old.function_id.clone()))?;
        let now = self.now();
        let (mut run, item, pauses) = self.new_run(&def, old.event.clone(), now);
        run.events = old.events.clone();
        run.rerun_of = Some(old.id.clone());
        run.parent = None;
        let id = run.id.clone();
        self.inner
            .store
            .commit(Commit {
                new_runs: vec![run],
                enqueue: vec![item],
                pauses,
                ..Commit::default()
            })
            .await?;
        self.inner.counters.runs_started(1);
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Cancels a run that has not finished; returns it in its final state.
    pub async fn cancel(&self, run_id: &str) -> Result<RunState, ExecutorError> {
        loop {
            let run = self
                .inner
                .store
                .load_run(run_id)
                .await?
                .ok_or_else(|| ExecutorError::RunNotFound(run_id.to_string()))?;
            if run.status.is_terminal() {
                return Err(ExecutorError::RunFinished {
                    run_id: run_id.to_string(),
                    status: run.status.as_str(),
                });
            }
            let ctx = Ctx {
                now: self.now(),
                retry_jitter: Duration::zero(),
            };
            let input = Input::Cancel {
                reason: "cancelled by an operator".into(),
            };
            let changed = state::may_change(&run, &input);
            let history_before = run.history.len();
            let (new, actions) = state::apply(run, input, &ctx);
            let new = Arc::new(new);
            let commit = self.plan(None, &new, changed, &actions, ctx.now);
            match self.inner.store.commit(commit).await {
                Ok(()) => {
                    self.after_commit(history_before, &new, &actions, 0, true);
                    return self
                        .inner
                        .store
                        .load_run(run_id)
                        .await?
                        .ok_or_else(|| ExecutorError::RunNotFound(run_id.to_string()));
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub async fn stats(&self) -> Result<ExecutorStats, ExecutorError> {
        let depth = self.inner.store.queue_depth(self.now()).await?;
        Ok(self.inner.counters.snapshot(depth))
    }

    /// Processes due work until none is left: calls, resumes, publishes and cron ticks that are
    /// due now. Work due later (sleeps, backoffs) stays queued. Returns how many items ran.
    pub async fn run_until_idle(&self) -> Result<usize, ExecutorError> {
        self.drive(None).await
    }

    /// Processes work as it becomes due until `shutdown` completes, then lets calls in flight
    /// finish.
    pub async fn run_until(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ExecutorError> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let me = self.clone();
        let run = me.drive(Some(rx));
        tokio::pin!(run);
        tokio::pin!(shutdown);
        tokio::select! {
            res = &mut run => return res.map(|_| ()),
            () = &mut shutdown => {}
        }
        // The loop still holds the receiver, so the send reaches it.
        let _ = tx.send(true);
        run.await.map(|_| ())
    }

    /// Starts the background loop on the current runtime. It first releases every lease, since
    /// in embedded mode this process is the only worker of the queue (leases left by a
    /// previous, crashed process would otherwise hold their items until they expire).
    pub fn spawn(&self) -> ExecutorHandle {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let me = self.clone();
        let task = tokio::spawn(async move {
            match me.inner.store.release_leases().await {
                Ok(n) if n > 0 => {
                    tracing::info!(released = n, "released leases of a previous process")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot release old leases"),
            }
            let sweeper = me.sweep_loop(rx.clone());
            tokio::select! {
                res = me.drive(Some(rx)) => {
                    if let Err(e) = res {
                        tracing::error!(error = %e, "executor loop stopped");
                    }
                }
                () = sweeper => {}
            }
        });
        ExecutorHandle { stop, task }
    }

    /// Deletes what finished before `cutoff` (runs, and event ids kept for de-duplication), a
    /// small batch per write so that no write holds the store for long. Returns the totals.
    pub async fn sweep(&self, cutoff: DateTime<Utc>) -> Result<Swept, ExecutorError> {
        const BATCH: usize = 200;
        let mut total = Swept::default();
        loop {
            let swept = self.inner.store.sweep(cutoff, BATCH).await?;
            total.runs += swept.runs;
            total.events += swept.events;
            if swept.runs < BATCH as u64 && swept.events < BATCH as u64 {
                return Ok(total);
            }
            // Other writers get their turn between batches.
            tokio::task::yield_now().await;
        }
    }

    /// With a retention set, sweeps every `sweep_every` until `stop`; never ends otherwise.
    async fn sweep_loop(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(retention) = self.inner.options.retention else {
            return std::future::pending().await;
        };
        let Ok(retention) = Duration::from_std(retention) else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval(self.inner.options.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return std::future::pending().await,
            }
            let Some(cutoff) = self.now().checked_sub_signed(retention) else {
                continue;
            };
            match self.sweep(cutoff).await {
                Ok(s) if s.runs + s.events > 0 => tracing::info!(
                    runs = s.runs,
                    events = s.events,
                    "swept finished runs and event ids past their retention"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping old runs failed; trying again later")
                }
            }
        }
    }

    /// Drops every lease; see [`Executor::spawn`]. Call before `run_until_idle` after a crash.
    pub async fn release_leases(&self) -> Result<u64, ExecutorError> {
        Ok(self.inner.store.release_leases().await?)
    }
}
