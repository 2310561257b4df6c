//! A scripted SDK serve endpoint for executor tests (reference §10), and a harness around the
//! executor. The fake speaks the wire protocol like the JS SDK: it replays the function from
//! the top against the memoized `steps`, runs one new step per request (or plans it when
//! `disable_immediate_execution` is set), honours targeted `stepId` calls, and answers errors
//! with `X-Inngest-No-Retry`. It counts how often each step body really ran.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use ticketing::inngest::SigningKey;
use ticketing::inngest::executor::store::{
    Claimed, Commit, Ingest, IngestOutcome, Lease, Pause, QueueDepth, QueueItem, RunFilter,
    StoreResult, Swept,
};
use ticketing::inngest::executor::{
    Executor, ExecutorOptions, ManualClock, MemoryStore, RouterTransport, RunState, RunStore,
    RunSummary, StoreError, server_api,
};
use tower::ServiceExt;

pub const APP: &str = "test-app";

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:03:00Z")
        .expect("BUG: literal")
        .with_timezone(&Utc)
}

pub fn hash(step: &str) -> String {
    hex::encode(Sha256::digest(step.as_bytes()))[..40].to_string()
}

pub fn composite(function: &str) -> String {
    format!("{APP}-{function}")
}

#[derive(Clone, Debug)]
pub struct RunStep {
    pub id: &'static str,
    pub output: Value,
    /// The first n executions throw.
    pub fail_first: u32,
    pub non_retriable: bool,
    pub retry_after: Option<&'static str>,
    /// The n-th execution (1-based) never returns, like a process killed mid-step.
    pub hang_on: Option<u32>,
    /// Yields this many times mid-step, so concurrent calls overlap.
    pub yields: u32,
}

impl RunStep {
    pub fn new(id: &'static str, output: Value) -> RunStep {
        RunStep {
            id,
            output,
            fail_first: 0,
            non_retriable: false,
            retry_after: None,
            hang_on: None,
            yields: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Step {
    Run(RunStep),
    Sleep {
        id: &'static str,
        duration: &'static str,
    },
    Wait {
        id: &'static str,
        event: &'static str,
        cond: Option<&'static str>,
        timeout: &'static str,
    },
    Invoke {
        id: &'static str,
        function: &'static str,
        data: Value,
    },
    /// `step.sendEvent`: a run-type step that posts to the event API.
    Send {
        id: &'static str,
        events: Vec<Value>,
    },
    Parallel(Vec<RunStep>),
}

pub fn run(id: &'static str, output: Value) -> Step {
    Step::Run(RunStep::new(id, output))
}

impl Step {
    fn id(&self) -> &'static str {
        match self {
            Step::Run(r) => r.id,
            Step::Sleep { id, .. }
            | Step::Wait { id, .. }
            | Step::Invoke { id, .. }
            | Step::Send { id, .. } => id,
            Step::Parallel(_) => "",
        }
    }
}

#[derive(Clone, Debug)]
pub enum End {
    /// Return every step's value by user id.
    Outputs,
    Value(Value),
    Throw {
        message: &'static str,
        non_retriable: bool,
    },
}

#[derive(Clone, Debug)]
pub struct FakeFn {
    pub id: &'static str,
    pub triggers: Vec<Value>,
    pub retries: Option<u32>,
    pub extra: Value,
    pub steps: Vec<Step>,
    pub end: End,
}

impl FakeFn {
    pub fn new(id: &'static str, event: &str) -> FakeFn {
        FakeFn {
            id,
            triggers: vec![json!({"event": event})],
            retries: None,
            extra: json!({}),
            steps: Vec::new(),
            end: End::Outputs,
        }
    }

    pub fn step(mut self, s: Step) -> FakeFn {
        self.steps.push(s);
        self
    }

    pub fn end(mut self, e: End) -> FakeFn {
        self.end = e;
        self
    }

    pub fn retries(mut self, n: u32) -> FakeFn {
        self.retries = Some(n);
        self
    }

    pub fn triggers(mut self, t: Vec<Value>) -> FakeFn {
        self.triggers = t;
        self
    }

    pub fn extra(mut self, v: Value) -> FakeFn {
        self.extra = v;
        self
    }

    pub fn register_json(&self) -> Value {
        let cid = composite(self.id);
        let mut step = json!({"id": "step", "name": "step",
            "runtime": {"type": "http", "url": format!("http://127.0.0.1/api/inngest?fnId={cid}&stepId=step")}});
        if let Some(n) = self.retries {
            step["retries"] = json!({"attempts": n});
        }
        let mut f =
            json!({"id": cid, "name": self.id, "triggers": self.triggers, "steps": {"step": step}});
        if let (Value::Object(f), Value::Object(extra)) = (&mut f, &self.extra) {
            f.extend(extra.clone());
        }
        f
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub fn_id: String,
    pub step_id: String,
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: Value,
}

#[derive(Default)]
struct Tracking {
    executions: HashMap<String, u32>,
    in_flight: HashMap<String, u32>,
    max_in_flight: HashMap<String, u32>,
}

pub struct FakeSdk {
    fns: HashMap<String, FakeFn>,
    tracking: Mutex<Tracking>,
    calls: Mutex<Vec<Recorded>>,
    pub hung: tokio::sync::Notify,
    event_api: OnceLock<Router>,
    signing_key: Option<SigningKey>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeSdk {
    pub fn new(fns: &[FakeFn], signing_key: Option<SigningKey>) -> Arc<FakeSdk> {
        Arc::new(FakeSdk {
            fns: fns.iter().map(|f| (composite(f.id), f.clone())).collect(),
            tracking: Mutex::new(Tracking::default()),
            calls: Mutex::new(Vec::new()),
            hung: tokio::sync::Notify::new(),
            event_api: OnceLock::new(),
            signing_key,
        })
    }

    pub fn functions_json(&self) -> Vec<Value> {
        let mut fns: Vec<&FakeFn> = self.fns.values().collect();
        fns.sort_by_key(|f| f.id);
        fns.iter().map(|f| f.register_json()).collect()
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api/inngest", post(handle))
            .with_state(self.clone())
    }

    pub fn set_event_api(&self, router: Router) {
        // Set once per fake; a second harness on the same fake keeps the first sink.
        let _ = self.event_api.set(router);
    }

    /// How many times the body of `function`'s step `step` ran.
    pub fn executions(&self, function: &str, step: &str) -> u32 {
        lock(&self.tracking)
            .executions
            .get(&format!("{}:{step}", composite(function)))
            .copied()
            .unwrap_or(0)
    }

    pub fn max_in_flight(&self, function: &str) -> u32 {
        lock(&self.tracking)
            .max_in_flight
            .get(&composite(function))
            .copied()
            .unwrap_or(0)
    }

    pub fn calls(&self) -> Vec<Recorded> {
        lock(&self.calls).clone()
    }

    pub fn calls_of(&self, function: &str) -> Vec<Recorded> {
        let cid = composite(function);
        self.calls()
            .into_iter()
            .filter(|c| c.fn_id == cid)
            .collect()
    }
}

fn sdk_response(
    status: StatusCode,
    body: Value,
    no_retry: Option<bool>,
    retry_after: Option<&str>,
) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", "application/json".parse().expect("BUG"));
    h.insert("x-inngest-sdk", "fake:v0.1.0".parse().expect("BUG"));
    h.insert("x-inngest-req-version", "2".parse().expect("BUG"));
    if let Some(nr) = no_retry {
        h.insert("x-inngest-no-retry", nr.to_string().parse().expect("BUG"));
    }
    if let Some(ra) = retry_after {
        h.insert("retry-after", ra.parse().expect("BUG"));
    }
    resp
}

fn ops(list: Vec<Value>) -> Response {
    sdk_response(StatusCode::PARTIAL_CONTENT, Value::Array(list), None, None)
}

fn planned(id: &str) -> Value {
    json!({"id": hash(id), "op": "StepPlanned", "name": id, "displayName": id, "opts": {}, "data": null})
}

/// Decodes a memoized value (reference §3.5): `Ok(data)` or `Err(error)`.
fn decode(v: &Value) -> Result<Value, Value> {
    if let Value::Object(m) = v
        && m.len() == 1
    {
        if let Some(d) = m.get("data") {
            return Ok(d.clone());
        }
        if let Some(e) = m.get("error") {
            return Err(e.clone());
        }
    }
    Ok(v.clone())
}

fn uncaught(error: Value) -> Response {
    // A memoized step error reaching user code fails the function for good.
    sdk_response(StatusCode::BAD_REQUEST, error, Some(true), None)
}

struct Call<'a> {
    sdk: &'a FakeSdk,
    fn_id: String,
    attempt: u64,
    max_attempts: u64,
}

impl Call<'_> {
    async fn execute(&self, r: &RunStep) -> Response {
        let key = format!("{}:{}", self.fn_id, r.id);
        let n = {
            let mut t = lock(&self.sdk.tracking);
            let n = {
                let e = t.executions.entry(key).or_default();
                *e += 1;
                *e
            };
            let cur = {
                let f = t.in_flight.entry(self.fn_id.clone()).or_default();
                *f += 1;
                *f
            };
            let m = t.max_in_flight.entry(self.fn_id.clone()).or_default();
            *m = (*m).max(cur);
            n
        };
        for _ in 0..r.yields {
            tokio::task::yield_now().await;
        }
        if r.hang_on == Some(n) {
            self.sdk.hung.notify_one();
            std::future::pending::<()>().await;
        }
        if let Some(f) = lock(&self.sdk.tracking).in_flight.get_mut(&self.fn_id) {
            *f -= 1;
        }
        if n <= r.fail_first {
            let error =
                json!({"name": "Error", "message": format!("{} failed (execution {n})", r.id)});
            let final_attempt = r.non_retriable || self.attempt + 1 >= self.max_attempts;
            let op = if final_attempt {
                "StepFailed"
            } else {
                "StepError"
            };
            return sdk_response(
                StatusCode::PARTIAL_CONTENT,
                json!([{"id": hash(r.id), "op": op, "name": r.id, "displayName": r.id, "opts": {}, "error": error}]),
                Some(final_attempt),
                r.retry_after,
            );
        }
        ops(vec![
            json!({"id": hash(r.id), "op": "StepRun", "name": r.id, "displayName": r.id,
                       "opts": {}, "data": r.output}),
        ])
    }

    async fn send(&self, id: &str, events: &[Value]) -> Response {
        let key = format!("{}:{id}", self.fn_id);
        *lock(&self.sdk.tracking).executions.entry(key).or_default() += 1;
        let Some(api) = self.sdk.event_api.get() else {
            return sdk_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "no event API"}),
                Some(false),
                None,
            );
        };
        let req = Request::post("/e/test-key")
            .header("content-type", "application/json")
            .body(Body::from(Value::Array(events.to_vec()).to_string()))
            .expect("BUG: request");
        let resp = api.clone().oneshot(req).await.expect("infallible");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let sent: Value = serde_json::from_slice(&body).expect("event API JSON");
        ops(vec![
            json!({"id": hash(id), "op": "StepRun", "name": "sendEvent", "displayName": id,
                       "opts": {"type": "step.sendEvent"}, "data": {"ids": sent["ids"]}}),
        ])
    }
}

async fn handle(
    State(sdk): State<Arc<FakeSdk>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let fn_id = q.get("fnId").cloned().unwrap_or_default();
    let step_id = q.get("stepId").cloned().unwrap_or_default();
    if let Some(key) = &sdk.signing_key {
        let sig = headers
            .get("x-inngest-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let t: i64 = sig
            .split('&')
            .find_map(|p| p.strip_prefix("t="))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if sig.is_empty() || key.sign(&raw, t) != sig {
            return (StatusCode::UNAUTHORIZED, r#"{"message":"Unauthorized"}"#).into_response();
        }
    }
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    lock(&sdk.calls).push(Recorded {
        fn_id: fn_id.clone(),
        step_id: step_id.clone(),
        headers: headers.clone(),
        raw: raw.clone(),
        body: body.clone(),
    });
    let Some(f) = sdk.fns.get(&fn_id) else {
        return sdk_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"name": "Error", "message": format!("Function {fn_id} was not found")}),
            None,
            None,
        );
    };
    let call = Call {
        sdk: &sdk,
        fn_id: fn_id.clone(),
        attempt: body
            .pointer("/ctx/attempt")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        max_attempts: body
            .pointer("/ctx/max_attempts")
            .and_then(Value::as_u64)
            .unwrap_or(1),
    };
    let plan_only = body.pointer("/ctx/disable_immediate_execution") == Some(&Value::Bool(true));
    let steps = body
        .get("steps")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let targeted = step_id != "step";
    let not_found = || {
        sdk_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("Could not find step {step_id} to run")}),
            Some(false),
            None,
        )
    };
    let mut outputs = Map::new();
    for s in &f.steps {
        if let Step::Parallel(branches) = s {
            let mut open = Vec::new();
            for b in branches {
                match steps.get(&hash(b.id)).map(decode) {
                    Some(Ok(v)) => {
                        outputs.insert(b.id.into(), v);
                    }
                    Some(Err(e)) => return uncaught(e),
                    None => open.push(b),
                }
            }
            if open.is_empty() {
                continue;
            }
            if targeted {
                return match open.iter().find(|b| hash(b.id) == step_id) {
                    Some(b) => call.execute(b).await,
                    None => not_found(),
                };
            }
            return ops(open.iter().map(|b| planned(b.id)).collect());
        }
        let id = s.id();
        match steps.get(&hash(id)).map(decode) {
            Some(Ok(v)) => {
                outputs.insert(id.into(), v);
                continue;
            }
            Some(Err(e)) => return uncaught(e),
            None => {}
        }
        if targeted {
            return match s {
                Step::Run(r) if hash(r.id) == step_id => call.execute(r).await,
                Step::Send { id, events } if hash(id) == step_id => call.send(id, events).await,
                _ => not_found(),
            };
        }
        return match s {
            Step::Run(r) if plan_only => ops(vec![planned(r.id)]),
            Step::Run(r) => call.execute(r).await,
            Step::Send { id, .. } if plan_only => ops(vec![planned(id)]),
            Step::Send { id, events } => call.send(id, events).await,
            Step::Sleep { id, duration } => ops(vec![
                json!({"id": hash(id), "op": "Sleep", "name": duration,
                "displayName": id, "opts": {"duration": duration}, "data": null}),
            ]),
            Step::Wait {
                id,
                event,
                cond,
                timeout,
            } => {
                let mut opts = json!({"event": event, "timeout": timeout});
                if let Some(c) = cond {
                    opts["if"] = json!(c);
                }
                ops(vec![
                    json!({"id": hash(id), "op": "WaitForEvent", "name": event, "displayName": id,
                    "opts": opts, "data": null}),
                ])
            }
            Step::Invoke { id, function, data } => {
                ops(vec![json!({"id": hash(id), "op": "InvokeFunction",
                "displayName": id, "opts": {"function_id": composite(function), "payload": {"data": data},
                "timeout": "1h"}, "data": null})])
            }
            Step::Parallel(_) => unreachable!("handled above"),
        };
    }
    if targeted {
        return not_found();
    }
    match &f.end {
        End::Outputs => sdk_response(StatusCode::OK, Value::Object(outputs), None, None),
        End::Value(v) => sdk_response(StatusCode::OK, v.clone(), None, None),
        End::Throw {
            message,
            non_retriable,
        } => {
            let final_attempt = *non_retriable || call.attempt + 1 >= call.max_attempts;
            let status = if final_attempt {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            sdk_response(
                status,
                json!({"name": "Error", "message": message}),
                Some(final_attempt),
                None,
            )
        }
    }
}

pub struct Harness {
    pub executor: Executor,
    pub sdk: Arc<FakeSdk>,
    pub clock: Arc<ManualClock>,
}

pub fn options(clock: Arc<ManualClock>) -> ExecutorOptions {
    ExecutorOptions {
        clock,
        max_retry_jitter: chrono::Duration::zero(),
        workers: 4,
        ..ExecutorOptions::default()
    }
}

pub async fn harness(fns: &[FakeFn]) -> Harness {
    let sdk = FakeSdk::new(fns, None);
    harness_with(
        sdk,
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(t0())),
        |o| o,
    )
    .await
}

pub async fn harness_with(
    sdk: Arc<FakeSdk>,
    store: Arc<dyn RunStore>,
    clock: Arc<ManualClock>,
    configure: impl FnOnce(ExecutorOptions) -> ExecutorOptions,
) -> Harness {
    let transport = Arc::new(RouterTransport::new(sdk.router()));
    let executor = Executor::new(store, transport, configure(options(clock.clone())));
    sdk.set_event_api(server_api::router(executor.clone()));
    executor
        .register(APP, sdk.functions_json())
        .await
        .expect("fake functions register");
    Harness {
        executor,
        sdk,
        clock,
    }
}

impl Harness {
    pub async fn publish(&self, name: &str, data: Value) -> String {
        let ids = self
            .executor
            .publish(vec![json!({"name": name, "data": data})])
            .await
            .expect("publish");
        ids.into_iter().next().expect("one id")
    }

    pub async fn settle(&self) -> usize {
        self.executor
            .run_until_idle()
            .await
            .expect("run until idle")
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    pub async fn runs_of(&self, function: &str) -> Vec<RunSummary> {
        self.executor
            .list_runs(ticketing::inngest::executor::RunFilter {
                function_id: Some(composite(function)),
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("list runs")
    }

    pub async fn only_run(&self, function: &str) -> RunState {
        let runs = self.runs_of(function).await;
        assert_eq!(
            runs.len(),
            1,
            "expected one run of {function}, got {runs:?}"
        );
        self.run(&runs[0].id).await
    }

    pub async fn run(&self, id: &str) -> RunState {
        self.executor
            .get_run(id)
            .await
            .expect("get run")
            .expect("run exists")
    }
}

/// A store that watches what the executor asks of it: commits, claimed items and runs loaded.
/// It dies (every write fails, nothing more is claimed) at its `die_at`-th commit, like a
/// process killed between an SDK answer and saving it; with `usize::MAX` it never does.
pub struct WatchedStore {
    inner: Arc<dyn RunStore>,
    die_at: usize,
    dead: AtomicBool,
    pub commits: AtomicUsize,
    pub claimed: AtomicUsize,
    pub loads: AtomicUsize,
}

impl WatchedStore {
    pub fn new(inner: Arc<dyn RunStore>, die_at: usize) -> Arc<WatchedStore> {
        Arc::new(WatchedStore {
            inner,
            die_at,
            dead: AtomicBool::new(false),
            commits: AtomicUsize::new(0),
            claimed: AtomicUsize::new(0),
            loads: AtomicUsize::new(0),
        })
    }

    /// Counts a commit; whether the store is dead for it.
    fn dies_at_this_commit(&self) -> bool {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.die_at {
            self.dead.store(true, Ordering::SeqCst);
        }
        self.dead.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl RunStore for WatchedStore {
    async fn ingest(&self, ingest: Ingest) -> StoreResult<IngestOutcome> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("dead".into()));
        }
        self.inner.ingest(ingest).await
    }
    async fn pauses_for(&self, event_name: &str, now: DateTime<Utc>) -> StoreResult<Vec<Pause>> {
        self.inner.pauses_for(event_name, now).await
    }
    async fn claim(
        &self,
        now: DateTime<Utc>,
        max: usize,
        lease_for: chrono::Duration,
    ) -> StoreResult<Vec<Claimed>> {
        if self.dead.load(Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        let claimed = self.inner.claim(now, max, lease_for).await?;
        self.claimed.fetch_add(claimed.len(), Ordering::SeqCst);
        Ok(claimed)
    }
    async fn next_wake(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.inner.next_wake().await
    }
    async fn release_leases(&self) -> StoreResult<u64> {
        self.inner.release_leases().await
    }
    async fn load_run(&self, run_id: &str) -> StoreResult<Option<RunState>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load_run(run_id).await
    }
    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        if self.dies_at_this_commit() {
            return Err(StoreError::Unavailable("simulated crash".into()));
        }
        self.inner.commit(commit).await
    }
    async fn commit_keeping(
        &self,
        commit: Commit,
        keep: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<Lease>> {
        if self.dies_at_this_commit() {
            return Err(StoreError::Unavailable("simulated crash".into()));
        }
        self.inner.commit_keeping(commit, keep, until).await
    }
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunSummary>> {
        self.inner.list_runs(filter).await
    }
    async fn queue_depth(&self, now: DateTime<Utc>) -> StoreResult<QueueDepth> {
        self.inner.queue_depth(now).await
    }
    async fn enqueue(&self, items: Vec<QueueItem>) -> StoreResult<()> {
        self.inner.enqueue(items).await
    }
    async fn sweep(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<Swept> {
        self.inner.sweep(cutoff, limit).await
    }
}
