//! The async side: claims due queue items, calls the serve endpoint, feeds the answers to the
//! state machine and commits the result (new run state, next queue items, pauses) in one
//! store transaction before anything else happens to the run.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::opcode::{CallOutcome, parse_response, transport_error};
use super::service::{Executor, ExecutorError, cron_event, cron_key};
use super::state::{self, Action, Ctx, Input, Outcome, RunState};
use super::store::{Claimed, Commit, ItemKind, Lease, QueueItem, Slot, StoreError};
use super::transport::{CallSettings, call_request};
use inngest_axum::Opcode;

/// Pending forever when there is no stop signal.
async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            if rx.wait_for(|s| *s).await.is_err() {
                // Sender gone: nobody can stop us any more; treat as a stop request.
            }
        }
        None => std::future::pending().await,
    }
}

mod plan;

/// How many steps of one run a worker takes in a row before it leaves the next to a claim, so
/// a run with a long loop of steps cannot keep a worker to itself.
const MAX_STEPS_IN_A_ROW: u32 = 32;

/// A run's next call, leased to the worker whose commit queued it.
struct NextCall {
    lease: Lease,
    run: RunState,
    step_id: String,
    attempt: u32,
    /// The concurrency slots its lease holds.
    slots: Vec<Slot>,
}

impl Executor {
    /// The worker loop. Without a stop signal it returns once nothing is due and nothing is in
    /// flight; with one it waits for new work until told to stop.
    pub(crate) async fn drive(
        &self,
        mut stop: Option<watch::Receiver<bool>>,
    ) -> Result<usize, ExecutorError> {
        let until_idle = stop.is_none();
        let workers = self.inner.options.workers.max(1);
        let mut inflight: JoinSet<()> = JoinSet::new();
        let mut processed = 0usize;
        let mut last_gauge = Instant::now();
        loop {
            if stop.as_ref().is_some_and(|s| *s.borrow()) {
                break;
            }
            let free = workers.saturating_sub(inflight.len());
            let mut claimed = 0;
            if free > 0 {
                match self
                    .inner
                    .store
                    .claim(self.now(), free, self.inner.options.lease)
                    .await
                {
                    Ok(items) => {
                        claimed = items.len();
                        for c in items {
                            let me = self.clone();
                            inflight.spawn(async move { me.process(c).await });
                        }
                    }
                    Err(e) if until_idle => return Err(e.into()),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim queue items");
                        tokio::select! {
                            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                            () = stopped(&mut stop) => break,
                        }
                        continue;
                    }
                }
            }
            if !until_idle && last_gauge.elapsed() > std::time::Duration::from_secs(1) {
                last_gauge = Instant::now();
                if let Err(e) = self.stats().await {
                    tracing::warn!(error = %e, "cannot read queue depth");
                }
            }
            if until_idle {
                match inflight.join_next().await {
                    Some(res) => {
                        processed += 1;
                        if let Err(e) = res {
                            tracing::error!(error = %e, "queue item task panicked");
                        }
                    }
                    None => break,
                }
                continue;
            }
            if claimed == free {
                // Every worker is busy: wait for one.
                tokio::select! {
                    Some(_) = inflight.join_next() => processed += 1,
                    () = stopped(&mut stop) => break,
                }
                continue;
            }
            let now = self.now();
            let sleep_for = match self.inner.store.next_wake().await {
                // Due but not claimable: held back by a concurrency limit. Every commit wakes
                // the loop, so wait for that rather than polling.
                Ok(Some(t)) if t <= now => self.inner.options.idle_poll,
                Ok(Some(t)) => (t - now).to_std().unwrap_or_default().clamp(
                    std::time::Duration::from_millis(1),
                    self.inner.options.idle_poll,
                ),
                Ok(None) => self.inner.options.idle_poll,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the next due time");
                    std::time::Duration::from_secs(1)
                }
            };
            tokio::select! {
                Some(_) = inflight.join_next(), if !inflight.is_empty() => processed += 1,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(sleep_for) => {}
                () = stopped(&mut stop) => break,
            }
        }
        while inflight.join_next().await.is_some() {
            processed += 1;
        }
        Ok(processed)
    }

    async fn process(&self, claimed: Claimed) {
        let key = claimed.item.key.clone();
        if let Err(e) = self.process_item(claimed).await {
            tracing::warn!(item = %key, error = %e, "queue item failed; it is retried when its lease expires");
        }
    }

    async fn process_item(&self, claimed: Claimed) -> Result<(), ExecutorError> {
        let Claimed { item, lease } = claimed;
        match item.kind.clone() {
            ItemKind::Call { step_id, attempt } => {
                let Some(run) = self.live_run(item.run_id.as_deref()).await? else {
                    return self.drop_item(lease).await;
                };
                self.calls(NextCall {
                    lease,
                    run,
                    step_id,
                    attempt,
                    slots: item.concurrency,
                })
                .await
            }
            ItemKind::Resume {
                step_id,
                value,
                reason,
                pause_id,
            } => {
                let Some(run) = self.live_run(item.run_id.as_deref()).await? else {
                    return self.drop_item(lease).await;
                };
                let input = Input::Resume {
                    step_id,
                    value,
                    reason,
                };
                let next = self
                    .transition(lease, run, input, pause_id.into_iter().collect(), Some(&[]))
                    .await?;
                match next {
                    Some(next) => self.calls(next).await,
                    None => Ok(()),
                }
            }
            ItemKind::Cancel { reason } => {
                let Some(run) = self.live_run(item.run_id.as_deref()).await? else {
                    return self.drop_item(lease).await;
                };
                self.transition(lease, run, Input::Cancel { reason }, Vec::new(), None)
                    .await
                    .map(drop)
            }
            ItemKind::Publish { events } => {
                // Ids are fixed, so publishing again after a crash is deduplicated.
                let now = self.now();
                for event in events {
                    self.ingest_event(event, now).await?;
                }
                self.drop_item(lease).await
            }
            ItemKind::Cron {
                function_id,
                schedule,
            } => self.fire_cron(lease, &item, &function_id, &schedule).await,
        }
    }

    /// Calls the SDK for a run's step and commits the answer, then goes on with the run's next
    /// step while the commit hands it one: the same worker, with the run as it just wrote it,
    /// so a run's steps in a row cost no claim and no reload.
    async fn calls(&self, mut next: NextCall) -> Result<(), ExecutorError> {
        for link in 1.. {
            let NextCall {
                lease,
                run,
                step_id,
                attempt,
                slots,
            } = next;
            let started_at = self.now();
            let clock = Instant::now();
            let outcome = self.call_sdk(&run, &step_id, attempt, started_at).await;
            let elapsed = clock.elapsed();
            self.inner.counters.call(elapsed.as_secs_f64());
            let input = Input::Call {
                step_id,
                attempt,
                outcome,
                started_at,
                duration: Duration::from_std(elapsed).unwrap_or_default(),
            };
            let keep = (link < MAX_STEPS_IN_A_ROW).then_some(slots.as_slice());
            match self.transition(lease, run, input, Vec::new(), keep).await? {
                Some(call) => next = call,
                None => break,
            }
        }
        Ok(())
    }

    async fn live_run(&self, run_id: Option<&str>) -> Result<Option<RunState>, ExecutorError> {
        let Some(id) = run_id else { return Ok(None) };
        Ok(self
            .inner
            .store
            .load_run(id)
            .await?
            .filter(|r| !r.status.is_terminal()))
    }

    async fn drop_item(&self, lease: Lease) -> Result<(), ExecutorError> {
        match self
            .inner
            .store
            .commit(Commit {
                done: Some(lease),
                ..Commit::default()
            })
            .await
        {
            Ok(()) | Err(StoreError::LeaseLost(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn call_sdk(
        &self,
        run: &RunState,
        step_id: &str,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> CallOutcome {
        let Some(def) = self.function(&run.function_id) else {
            return transport_error(format!("function {} is not registered", run.function_id));
        };
        let settings = CallSettings {
            signing_key: self.inner.options.signing_key.as_ref(),
            omit_fn_id: self.inner.options.omit_fn_id,
        };
        let req = match call_request(run, &def, step_id, attempt, settings, now) {
            Ok(r) => r,
            Err(e) => return transport_error(e.to_string()),
        };
        let timeout = self.inner.options.call_timeout;
        match tokio::time::timeout(timeout, self.inner.transport.call(req)).await {
            Ok(Ok(resp)) => parse_response(
                resp.status().as_u16(),
                resp.headers(),
                resp.body(),
                self.now(),
            ),
            Ok(Err(e)) => transport_error(e.to_string()),
            Err(_) => transport_error(format!("no answer within {} s", timeout.as_secs())),
        }
    }

    fn jitter(&self) -> Duration {
        let max = self.inner.options.max_retry_jitter.num_milliseconds();
        if max <= 0 {
            return Duration::zero();
        }
        Duration::milliseconds(rand::rng().random_range(0..=max))
    }

    /// Applies `input` to the run and commits the outcome, reloading and re-applying when a
    /// concurrent writer (a parallel step) changed the run meanwhile.
    ///
    /// With `keep`, the slots of the item being finished, a call of the same run due now and
    /// taking the same slots (so no limit is exceeded) is leased to this worker in the commit
    /// and returned, rather than left for a claim.
    async fn transition(
        &self,
        lease: Lease,
        mut run: RunState,
        input: Input,
        remove_pauses: Vec<String>,
        keep: Option<&[Slot]>,
    ) -> Result<Option<NextCall>, ExecutorError> {
        loop {
            let ctx = Ctx {
                now: self.now(),
                retry_jitter: self.jitter(),
            };
            let changed = state::may_change(&run, &input);
            let history_before = run.history.len();
            let (new, actions) = state::apply(run, input.clone(), &ctx);
            let new = Arc::new(new);
            let mut commit = self.plan(Some(lease.clone()), &new, changed, &actions, ctx.now);
            commit.remove_pauses.extend(remove_pauses.iter().cloned());
            let new_runs = commit.new_runs.len() as u64;
            let queued = commit.enqueue.len();
            let wrote_run = commit.run.is_some();
            let next = keep.and_then(|slots| {
                commit.enqueue.iter().find_map(|item| match &item.kind {
                    ItemKind::Call { step_id, attempt }
                        if item.run_id.as_deref() == Some(new.id.as_str())
                            && item.due_at <= ctx.now
                            && item.concurrency == slots =>
                    {
                        Some((item.id.clone(), step_id.clone(), *attempt, slots.to_vec()))
                    }
                    _ => None,
                })
            });
            let committed = match &next {
                Some((id, ..)) => {
                    let until = ctx.now + self.inner.options.lease;
                    self.inner.store.commit_keeping(commit, id, until).await
                }
                None => self.inner.store.commit(commit).await.map(|()| None),
            };
            match committed {
                Ok(kept) => {
                    let next = kept.zip(next);
                    // Nothing for the loop to claim, and no slot freed, when this worker kept
                    // all that was queued.
                    let wake = next.is_none() || queued > 1;
                    self.after_commit(history_before, &new, &actions, new_runs, wake);
                    return Ok(next.map(|(lease, (_, step_id, attempt, slots))| {
                        // The store has let go of its share by now: no copy is made.
                        let mut run = Arc::unwrap_or_clone(new);
                        if wrote_run {
                            run.rev += 1;
                        }
                        NextCall {
                            lease,
                            run,
                            step_id,
                            attempt,
                            slots,
                        }
                    }));
                }
                Err(StoreError::Conflict(_)) => match self.inner.store.load_run(&new.id).await? {
                    Some(fresh) => run = fresh,
                    None => return self.drop_item(lease).await.map(|()| None),
                },
                Err(StoreError::LeaseLost(item)) => {
                    tracing::debug!(%item, "lease lost; another worker owns the item now");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Counts what a committed transition did and wakes the loop for the work it queued.
    /// `history_before` is the length of the run's history before the transition.
    pub(crate) fn after_commit(
        &self,
        history_before: usize,
        new: &RunState,
        actions: &[Action],
        new_runs: u64,
        wake: bool,
    ) {
        let counters = &self.inner.counters;
        for entry in new.history.iter().skip(history_before) {
            match (entry.outcome, entry.op.as_str()) {
                (Outcome::Completed, op)
                    if matches!(Opcode::from_name(op), Some(Opcode::StepRun | Opcode::Step)) =>
                {
                    counters.step(false)
                }
                (Outcome::Failed, op) if op != "FunctionError" => counters.step(true),
                (Outcome::Retrying, _) => counters.retry(),
                _ => {}
            }
        }
        for action in actions {
            if let Action::Finished(status) = action {
                tracing::debug!(run = %new.id, function = %new.function_id, status = status.as_str(), "run finished");
                counters.run_finished(*status);
            }
        }
        counters.runs_started(new_runs);
        if wake {
            self.inner.wake.notify_one();
        }
    }

    async fn fire_cron(
        &self,
        lease: Lease,
        item: &QueueItem,
        function_id: &str,
        schedule: &str,
    ) -> Result<(), ExecutorError> {
        let def = self.function(function_id);
        let Some((def, sched)) = def.as_ref().and_then(|d| {
            d.cron_schedules()
                .find(|(s, _)| *s == schedule)
                .map(|(_, sched)| (d, sched.clone()))
        }) else {
            // The function or this schedule is gone: stop ticking.
            return self.drop_item(lease).await;
        };
        let now = self.now();
        let event = cron_event(function_id, schedule, item.due_at, now);
        let (run, call, pauses) = self.new_run(def, event.clone(), now);
        let mut enqueue = vec![call];
        if let Some(next) = sched.next_after(now.max(item.due_at)) {
            enqueue.push(QueueItem::new(
                cron_key(function_id, schedule),
                None,
                ItemKind::Cron {
                    function_id: function_id.to_string(),
                    schedule: schedule.to_string(),
                },
                next,
            ));
        }
        match self
            .inner
            .store
            .commit(Commit {
                done: Some(lease),
                new_runs: vec![run],
                events: vec![event],
                enqueue,
                pauses,
                ..Commit::default()
            })
            .await
        {
            Ok(()) => {
                self.inner.counters.runs_started(1);
                self.inner.wake.notify_one();
                Ok(())
            }
            Err(StoreError::LeaseLost(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
