//! The step tool handed to every function handler.
//!
//! Each step call resolves its hashed id *when it is called* (not when awaited), so the ids of
//! parallel steps follow call order and replays are deterministic. A memoized step returns its
//! stored value; an unmemoized one is recorded and its future yields
//! `Err(FnError::Interrupt(_))`, which the handler propagates with `?`. In a discovery that may
//! run a step at once, a new run-type step's future first waits until the handler can go no
//! further: if it is the only new step it runs there and then, in the same pass.
//!
//! Run steps in parallel with [`Step::parallel`] (or `futures::join!`), never with a `try_join`
//! combinator: those stop polling at the first interrupt, so a planned step might never run.

mod options;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::client::EventClient;
use super::error::{FnError, Interrupt, StepError};
use super::protocol::{ErrorBody, Event, Memoized, Opcode, OutgoingOp, Timing, Userland, time_str};
pub use options::{Invoke, WaitForEvent};
pub(crate) use state::{FoundStep, RanStep, StepRetry};
use state::{Hold, StepState};

struct StepInner {
    state: Mutex<StepState>,
    app_id: String,
    events: Option<EventClient>,
}

/// The step tool. Cheap to clone; all clones share the same request state.
#[derive(Clone)]
pub struct Step {
    inner: Arc<StepInner>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

enum Plan {
    Memo(Memoized),
    Execute(Box<OutgoingOp>),
    Stop,
    /// Found in a discovery that may run it at once: wait for the decision (see [`Hold`]).
    Hold(String),
}

fn base_op(op: Opcode, hashed: String, user_id: &str, index: Option<u32>) -> OutgoingOp {
    OutgoingOp {
        id: hashed,
        op,
        name: Some(user_id.to_owned()),
        display_name: Some(user_id.to_owned()),
        opts: json!({}),
        userland: Some(Userland {
            id: user_id.to_owned(),
            index,
        }),
        data: Value::Null,
        error: None,
        timing: None,
    }
}

fn iso_millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Step {
    pub(crate) fn new(
        app_id: impl Into<String>,
        memo: Map<String, Value>,
        target: Option<String>,
        attempt: u32,
        max_attempts: Option<u32>,
        events: Option<EventClient>,
    ) -> Self {
        Self {
            inner: Arc::new(StepInner {
                state: Mutex::new(StepState {
                    memo,
                    target,
                    attempt,
                    max_attempts,
                    ..StepState::default()
                }),
                app_id: app_id.into(),
                events,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, StepState> {
        // A poisoned lock only means a handler panicked mid-step; the state is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes new run-type steps of this discovery wait for [`Step::decide_held`] instead of
    /// interrupting at once, so the one to run can run in this pass.
    pub(crate) fn hold_new_steps(&self) {
        self.state().holding = true;
    }

    /// Called when the handler can go no further: once steps were found, the only one runs if
    /// it is alone and run-type; otherwise they all interrupt. Wakes the step futures waiting.
    pub(crate) fn decide_held(&self) {
        let mut st = self.state();
        if st.found.is_empty() || !matches!(st.hold, Hold::Undecided(_)) {
            return;
        }
        let decision = match st.found.as_slice() {
            [only] if only.runnable => Hold::Run(only.op.id.clone()),
            _ => Hold::Stop,
        };
        if let Hold::Undecided(waiting) = std::mem::replace(&mut st.hold, decision) {
            drop(st);
            waiting.into_iter().for_each(Waker::wake);
        }
    }

    /// Waits for the decision on a held step: its op when it is the one to run.
    fn held(&self, hashed: &str) -> impl Future<Output = Option<Box<OutgoingOp>>> + use<> {
        let (step, hashed) = (self.clone(), hashed.to_owned());
        std::future::poll_fn(move |cx| {
            let mut st = step.state();
            match &mut st.hold {
                Hold::Undecided(waiting) => {
                    if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                        waiting.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
                Hold::Run(id) if *id == hashed => {
                    let op = st.found.iter().find(|f| f.op.id == hashed);
                    Poll::Ready(op.map(|f| Box::new(f.op.clone())))
                }
                Hold::Run(_) | Hold::Stop => Poll::Ready(None),
            }
        })
    }

    /// Takes what this request produced; used by the executor once the handler has finished.
    pub(crate) fn take_results(&self) -> (Vec<FoundStep>, Option<RanStep>) {
        let mut st = self.state();
        (std::mem::take(&mut st.found), st.ran.take())
    }

    fn plan(
        &self,
        user_id: &str,
        runnable: bool,
        make_op: impl FnOnce(String, Option<u32>) -> OutgoingOp,
    ) -> Plan {
        let mut st = self.state();
        let (hashed, index) = st.resolve(user_id);
        if let Some(value) = st.memo.get(&hashed) {
            match Memoized::decode(value) {
                Memoized::Input(_) => {}
                memo => return Plan::Memo(memo),
            }
        }
        let op = make_op(hashed, index);
        if runnable && st.target.as_deref() == Some(op.id.as_str()) {
            return Plan::Execute(Box::new(op));
        }
        let hold = (runnable && st.holding).then(|| op.id.clone());
        st.found.push(FoundStep { op, runnable });
        hold.map_or(Plan::Stop, Plan::Hold)
    }

    /// Runs `f` once, durably: its result is memoized under the step id and returned on every
    /// replay. Errors are retried per step; once retries are exhausted the step's error is raised
    /// back as [`FnError::Step`].
    pub fn run<T, F, Fut>(
        &self,
        id: &str,
        f: F,
    ) -> impl Future<Output = Result<T, FnError>> + Send + use<T, F, Fut>
    where
        T: Serialize + DeserializeOwned + Send,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, FnError>> + Send,
    {
        let user_id = id.to_owned();
        let plan = self.plan(id, true, |hashed, index| {
            base_op(Opcode::StepPlanned, hashed, id, index)
        });
        let step = self.clone();
        async move {
            let work = async {
                let value = f().await?;
                serde_json::to_value(&value).map_err(|e| {
                    FnError::non_retriable(format!(
                        "step {user_id:?} returned a value that is not JSON: {e}"
                    ))
                })
            };
            let memo = step.memo_or_run(plan, work).await?;
            decode_memo(&user_id, memo)
        }
    }

    /// A run-type step's memoized outcome, if it has one. Otherwise `work` runs as the step
    /// when the plan (or, for a held step, the handler's decision) says so, and the pass ends
    /// either way: the step's outcome goes back in the response.
    async fn memo_or_run(
        &self,
        plan: Plan,
        work: impl Future<Output = Result<Value, FnError>>,
    ) -> Result<Memoized, FnError> {
        let op = match plan {
            Plan::Memo(memo) => return Ok(memo),
            Plan::Stop => None,
            Plan::Execute(op) => Some(op),
            Plan::Hold(hashed) => self.held(&hashed).await,
        };
        if let Some(op) = op {
            self.execute(op, work).await;
        }
        Err(Interrupt::new().into())
    }

    async fn execute(
        &self,
        op: Box<OutgoingOp>,
        work: impl Future<Output = Result<Value, FnError>>,
    ) {
        let started = Utc::now();
        let clock = Instant::now();
        let result = work.await;
        let timing = Timing {
            a: started.timestamp_nanos_opt().unwrap_or_default(),
            b: i64::try_from(clock.elapsed().as_nanos()).unwrap_or(i64::MAX),
        };
        let mut st = self.state();
        let final_attempt = st.is_final_attempt();
        let ran = match result {
            Ok(data) => RanStep {
                op: OutgoingOp {
                    op: Opcode::StepRun,
                    data,
                    timing: Some(timing),
                    ..*op
                },
                retry: StepRetry::Succeeded,
            },
            Err(err) => {
                let body = err.to_body();
                let (opcode, retry) = match &err {
                    FnError::NonRetriable { .. } | FnError::Step(_) | FnError::Interrupt(_) => {
                        (Opcode::StepFailed, StepRetry::NoRetry)
                    }
                    _ if final_attempt => (Opcode::StepFailed, StepRetry::NoRetry),
                    FnError::RetryAfter { after, .. } => (
                        Opcode::StepError,
                        StepRetry::RetryAfter(after.header_value()),
                    ),
                    FnError::Retriable { .. } => (Opcode::StepError, StepRetry::Retry),
                };
                // JS also puts the serialized error in `data` of a StepFailed op.
                let data = if opcode == Opcode::StepFailed {
                    serde_json::to_value(&body).unwrap_or(Value::Null)
                } else {
                    Value::Null
                };
                RanStep {
                    op: OutgoingOp {
                        op: opcode,
                        error: Some(body),
                        data,
                        timing: Some(timing),
                        ..*op
                    },
                    retry,
                }
            }
        };
        st.ran = Some(ran);
    }

    /// Pauses the run for `duration` (rounded to whole seconds, at least one).
    pub fn sleep(
        &self,
        id: &str,
        duration: Duration,
    ) -> impl Future<Output = Result<(), FnError>> + Send + use<> {
        self.sleep_op(id, time_str(duration))
    }

    /// Pauses the run until `until` (immediately if it is in the past).
    pub fn sleep_until(
        &self,
        id: &str,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), FnError>> + Send + use<> {
        self.sleep_op(id, iso_millis(until))
    }

    fn sleep_op(
        &self,
        id: &str,
        spec: String,
    ) -> impl Future<Output = Result<(), FnError>> + Send + use<> {
        let user_id = id.to_owned();
        let plan = self.plan(id, false, |hashed, index| OutgoingOp {
            name: Some(spec.clone()),
            opts: json!({ "duration": spec }),
            ..base_op(Opcode::Sleep, hashed, id, index)
        });
        async move {
            match plan {
                Plan::Memo(Memoized::Error(error)) => Err(StepError {
                    step_id: user_id,
                    error,
                }
                .into()),
                Plan::Memo(_) => Ok(()),
                Plan::Stop | Plan::Execute(_) | Plan::Hold(_) => Err(Interrupt::new().into()),
            }
        }
    }

    /// Waits for an event; `Ok(None)` when the timeout passed first.
    pub fn wait_for_event<T>(
        &self,
        id: &str,
        opts: WaitForEvent,
    ) -> impl Future<Output = Result<Option<T>, FnError>> + Send + use<T>
    where
        T: DeserializeOwned + Send,
    {
        let user_id = id.to_owned();
        let plan = self.plan(id, false, |hashed, index| {
            let mut o = Map::new();
            o.insert("timeout".into(), Value::String(time_str(opts.timeout)));
            if let Some(expr) = &opts.if_exp {
                o.insert("if".into(), Value::String(expr.clone()));
            }
            o.insert("event".into(), Value::String(opts.event.clone()));
            OutgoingOp {
                name: Some(opts.event.clone()),
                opts: Value::Object(o),
                ..base_op(Opcode::WaitForEvent, hashed, id, index)
            }
        });
        async move {
            match plan {
                Plan::Memo(Memoized::Data(Value::Null)) => Ok(None),
                Plan::Memo(memo) => decode_memo(&user_id, memo).map(Some),
                Plan::Stop | Plan::Execute(_) | Plan::Hold(_) => Err(Interrupt::new().into()),
            }
        }
    }

    /// Runs another function and returns its result. Its failure is raised as [`FnError::Step`].
    pub fn invoke<T>(
        &self,
        id: &str,
        target: Invoke,
    ) -> impl Future<Output = Result<T, FnError>> + Send + use<T>
    where
        T: DeserializeOwned + Send,
    {
        let user_id = id.to_owned();
        let app = target.app_id.as_deref().unwrap_or(&self.inner.app_id);
        let function_id = format!("{app}-{}", target.function_id);
        let plan = self.plan(id, false, |hashed, index| {
            let mut o = Map::new();
            o.insert("payload".into(), json!({ "data": target.data }));
            o.insert("function_id".into(), Value::String(function_id));
            if let Some(timeout) = target.timeout {
                o.insert("timeout".into(), Value::String(time_str(timeout)));
            }
            OutgoingOp {
                name: None,
                opts: Value::Object(o),
                ..base_op(Opcode::InvokeFunction, hashed, id, index)
            }
        });
        async move {
            match plan {
                Plan::Memo(memo) => decode_memo(&user_id, memo),
                Plan::Stop | Plan::Execute(_) | Plan::Hold(_) => Err(Interrupt::new().into()),
            }
        }
    }

    /// Sends events durably (once per run, whatever the replays) and returns their ids.
    pub fn send_event(
        &self,
        id: &str,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<Vec<String>, FnError>> + Send + use<> {
        let user_id = id.to_owned();
        let plan = self.plan(id, true, |hashed, index| OutgoingOp {
            name: Some("sendEvent".to_owned()),
            opts: json!({ "type": "step.sendEvent" }),
            ..base_op(Opcode::StepPlanned, hashed, id, index)
        });
        let step = self.clone();
        async move {
            let work = async {
                let client = step.inner.events.as_ref().ok_or_else(|| {
                    FnError::retriable("no event client is configured for send_event")
                })?;
                let ids = client
                    .send(&events)
                    .await
                    .map_err(|e| FnError::retriable(e.to_string()))?;
                Ok(json!({ "ids": ids }))
            };
            let memo = step.memo_or_run(plan, work).await?;
            #[derive(serde::Deserialize)]
            struct Sent {
                ids: Vec<String>,
            }
            decode_memo::<Sent>(&user_id, memo).map(|s| s.ids)
        }
    }

    /// Awaits every future (all are polled to completion, so every step in the group is either
    /// found or run) and returns their values in order. An interrupt wins over errors.
    pub async fn parallel<T, Fut>(
        &self,
        futures: impl IntoIterator<Item = Fut>,
    ) -> Result<Vec<T>, FnError>
    where
        Fut: Future<Output = Result<T, FnError>>,
    {
        let results = futures::future::join_all(futures).await;
        let mut values = Vec::with_capacity(results.len());
        let mut first_error = None;
        for result in results {
            match result {
                Ok(v) => values.push(v),
                Err(e) if e.is_interrupt() => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(values),
        }
    }
}

fn decode_memo<T: DeserializeOwned>(user_id: &str, memo: Memoized) -> Result<T, FnError> {
    match memo {
        Memoized::Data(value) => serde_json::from_value(value).map_err(|e| {
            FnError::retriable(format!(
                "memoized result of step {user_id:?} does not fit the expected type: {e}"
            ))
        }),
        Memoized::Error(error) => Err(StepError {
            step_id: user_id.to_owned(),
            error,
        }
        .into()),
        Memoized::Input(_) => Err(Interrupt::new().into()),
    }
}

/// The body of a memoized step failure as the executor would store it; handy in tests.
pub fn memoized_error(name: &str, message: &str) -> Value {
    json!({ "error": ErrorBody::new(name, message) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::hash_step_id;

    fn step(memo: Value, target: Option<&str>) -> Step {
        let memo = memo.as_object().cloned().unwrap_or_default();
        Step::new("app", memo, target.map(str::to_owned), 0, Some(3), None)
    }

    #[tokio::test]
    async fn repeated_ids_are_indexed_in_call_order_including_memoized() {
        let s = step(json!({ hash_step_id("send-email"): {"data": 0} }), None);
        let first: i32 = s.run("send-email", || async { Ok(9) }).await.expect("memo");
        assert_eq!(first, 0);
        let second = s.run("send-email", || async { Ok(1) }).await;
        assert!(matches!(second, Err(FnError::Interrupt(_))));
        let (found, _) = s.take_results();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].op.id, hash_step_id("send-email:1"));
        assert_eq!(found[0].op.userland.as_ref().and_then(|u| u.index), Some(1));
        assert_eq!(found[0].op.op, Opcode::StepPlanned);
    }

    #[tokio::test]
    async fn parallel_steps_are_all_found_and_a_targeted_one_runs() {
        let s = step(json!({}), None);
        let futs: Vec<_> = (1..=3)
            .map(|i| s.run("send-email", move || async move { Ok(i) }))
            .collect();
        assert!(s.parallel(futs).await.is_err());
        let (found, ran) = s.take_results();
        let ids: Vec<_> = found.iter().map(|f| f.op.id.clone()).collect();
        assert_eq!(
            ids,
            ["send-email", "send-email:1", "send-email:2"].map(hash_step_id)
        );
        assert!(ran.is_none());

        let target = hash_step_id("send-email:1");
        let s = step(json!({}), Some(&target));
        let futs: Vec<_> = (1..=3)
            .map(|i| s.run("send-email", move || async move { Ok(i) }))
            .collect();
        assert!(s.parallel(futs).await.is_err());
        let (_, ran) = s.take_results();
        let ran = ran.expect("targeted step ran");
        assert_eq!(ran.op.op, Opcode::StepRun);
        assert_eq!(ran.op.data, json!(2));
        assert_eq!(ran.retry, StepRetry::Succeeded);
    }

    #[tokio::test]
    async fn step_errors_become_step_error_then_step_failed() {
        let target = hash_step_id("flaky");
        for (attempt, opcode, retry) in [
            (0, Opcode::StepError, StepRetry::Retry),
            (2, Opcode::StepFailed, StepRetry::NoRetry),
        ] {
            let s = Step::new(
                "app",
                Map::new(),
                Some(target.clone()),
                attempt,
                Some(3),
                None,
            );
            let _ = s
                .run::<i32, _, _>("flaky", || async { Err(FnError::retriable("broken")) })
                .await;
            let (_, ran) = s.take_results();
            let ran = ran.expect("ran");
            assert_eq!((ran.op.op, ran.retry), (opcode, retry));
            assert_eq!(
                ran.op.error.as_ref().map(|e| e.message.as_str()),
                Some("broken")
            );
        }
        let s = Step::new("app", Map::new(), Some(target.clone()), 0, Some(3), None);
        let _ = s
            .run::<i32, _, _>("flaky", || async {
                Err(FnError::retry_after("slow", Duration::from_secs(5)))
            })
            .await;
        assert_eq!(
            s.take_results().1.expect("ran").retry,
            StepRetry::RetryAfter("5".into())
        );
        let s = Step::new("app", Map::new(), Some(target), 0, Some(3), None);
        let _ = s
            .run::<i32, _, _>("flaky", || async { Err(FnError::non_retriable("no")) })
            .await;
        let ran = s.take_results().1.expect("ran");
        assert_eq!(
            (ran.op.op, ran.retry),
            (Opcode::StepFailed, StepRetry::NoRetry)
        );
    }

    #[tokio::test]
    async fn memoized_error_is_raised_back() {
        let s = step(
            json!({ hash_step_id("flaky"): memoized_error("Error", "broken") }),
            None,
        );
        match s.run::<i32, _, _>("flaky", || async { Ok(1) }).await {
            Err(FnError::Step(e)) => {
                assert_eq!((e.step_id.as_str(), e.message()), ("flaky", "broken"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn async_ops_have_the_wire_shape() {
        let s = step(json!({}), None);
        let _ = s.sleep("sleep", Duration::from_secs(60)).await;
        let _ = s
            .wait_for_event::<Value>(
                "wait",
                WaitForEvent::new("test/resume", Duration::from_secs(10))
                    .if_exp("async.data.id == event.data.id"),
            )
            .await;
        let _ = s
            .invoke::<Value>(
                "call-hello",
                Invoke::new("hello", json!({"name": "x"})).timeout(Duration::from_secs(3600)),
            )
            .await;
        let (found, _) = s.take_results();
        let ops: Vec<Value> = found
            .iter()
            .map(|f| serde_json::to_value(&f.op).expect("json"))
            .collect();
        assert_eq!(
            ops[0],
            json!({"id": hash_step_id("sleep"), "op": "Sleep", "name": "1m", "displayName": "sleep",
                   "opts": {"duration": "1m"}, "userland": {"id": "sleep"}, "data": null})
        );
        assert_eq!(
            ops[1]["opts"],
            json!({"timeout": "10s", "if": "async.data.id == event.data.id", "event": "test/resume"})
        );
        assert_eq!(ops[1]["name"], "test/resume");
        assert_eq!(
            ops[2]["opts"],
            json!({"payload": {"data": {"name": "x"}}, "function_id": "app-hello", "timeout": "1h"})
        );
        assert!(ops[2].get("name").is_none());
    }

    #[tokio::test]
    async fn waits_resolve_to_the_raw_event_or_none() {
        let event = json!({"name": "test/resume", "data": {"id": "1"}, "id": "E", "ts": 1});
        let s = step(
            json!({ hash_step_id("w"): event.clone(), hash_step_id("w:1"): null }),
            None,
        );
        let opts = WaitForEvent::new("test/resume", Duration::from_secs(1));
        let got: Option<Value> = s.wait_for_event("w", opts.clone()).await.expect("ok");
        assert_eq!(got, Some(event));
        let got: Option<Value> = s.wait_for_event("w", opts).await.expect("ok");
        assert_eq!(got, None);
    }
}
