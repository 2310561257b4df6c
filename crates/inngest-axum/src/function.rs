//! Function definitions: id, name, triggers, retries, flow control and handlers, and their
//! register JSON.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::FnError;
use super::protocol::{DISCOVERY_STEP_ID, Event, FUNCTION_FAILED_EVENT, time_str};
use super::step::Step;

/// What a handler receives besides the step tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Ctx {
    /// The triggering event (the first of the batch when batching).
    pub event: Event,
    /// Every event of the batch (just `event` otherwise).
    pub events: Vec<Event>,
    /// The run's id.
    pub run_id: String,
    /// Zero-based attempt of the current step or discovery call.
    pub attempt: u32,
    /// Retries + 1, when Inngest sent it.
    pub max_attempts: Option<u32>,
    /// Composite id of the running function (`<app>-<fn>`).
    pub function_id: String,
}

/// A type-erased handler.
pub type HandlerFn =
    Arc<dyn Fn(Ctx, Step) -> BoxFuture<'static, Result<Value, FnError>> + Send + Sync>;

fn erase<F, Fut, T>(handler: F) -> HandlerFn
where
    F: Fn(Ctx, Step) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, FnError>> + Send + 'static,
    T: Serialize,
{
    Arc::new(move |ctx, step| {
        let fut = handler(ctx, step);
        Box::pin(async move {
            let value = fut.await?;
            serde_json::to_value(value).map_err(|e| {
                FnError::non_retriable(format!("function returned a value that is not JSON: {e}"))
            })
        })
    })
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Runs on each event named `event`.
    Event {
        /// The event name.
        event: String,
        /// A CEL filter over `event`; only matching events start a run.
        expression: Option<String>,
    },
    /// Runs on a schedule.
    Cron {
        /// A cron expression (optionally `TZ=…` first).
        cron: String,
        /// A time string (`30s`): how late a run may start.
        jitter: Option<String>,
    },
}

impl Trigger {
    /// Runs on each event named `name`.
    pub fn event(name: impl Into<String>) -> Self {
        Self::Event {
            event: name.into(),
            expression: None,
        }
    }

    /// An event trigger with a CEL filter over `event`, e.g. `event.data.ok == true`.
    pub fn event_if(name: impl Into<String>, expression: impl Into<String>) -> Self {
        Self::Event {
            event: name.into(),
            expression: Some(expression.into()),
        }
    }

    /// Runs on a cron schedule, e.g. `0 9 * * MON-FRI` or `TZ=Europe/Paris 0 9 * * *`.
    pub fn cron(expression: impl Into<String>) -> Self {
        Self::Cron {
            cron: expression.into(),
            jitter: None,
        }
    }

    /// A cron trigger whose runs start up to `jitter` late.
    pub fn cron_with_jitter(expression: impl Into<String>, jitter: Duration) -> Self {
        Self::Cron {
            cron: expression.into(),
            jitter: Some(time_str(jitter)),
        }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        match self {
            Trigger::Event { event, expression } => {
                o.insert("event".into(), json!(event));
                if let Some(e) = expression {
                    o.insert("expression".into(), json!(e));
                }
            }
            Trigger::Cron { cron, jitter } => {
                o.insert("cron".into(), json!(cron));
                if let Some(j) = jitter {
                    o.insert("jitter".into(), json!(j));
                }
            }
        }
        Value::Object(o)
    }
}

/// Scope of a concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyScope {
    /// Per function (the default).
    Fn,
    /// Across the environment: shared by functions using the same key.
    Env,
    /// Across the account.
    Account,
}

/// At most `limit` steps of this function run at once (per `key` when set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concurrency {
    /// Steps running at once.
    pub limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Where the limit applies.
    pub scope: Option<ConcurrencyScope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A CEL expression: one limit per value.
    pub key: Option<String>,
}

impl Concurrency {
    /// At most `limit` steps at once.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            scope: None,
            key: None,
        }
    }

    /// One limit per value of this CEL expression.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Where the limit applies.
    pub fn scope(mut self, scope: ConcurrencyScope) -> Self {
        self.scope = Some(scope);
        self
    }
}

/// Queue runs beyond `limit` per `period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// Runs started per `period`.
    pub limit: u32,
    /// The window.
    pub period: Duration,
    /// Runs allowed in a burst above the rate.
    pub burst: Option<u32>,
    /// A CEL expression: one limit per value.
    pub key: Option<String>,
}

/// Drop runs beyond `limit` per `period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Runs started per `period`; more are dropped.
    pub limit: u32,
    /// The window.
    pub period: Duration,
    /// A CEL expression: one limit per value.
    pub key: Option<String>,
}

/// Wait for `period` of quiet before running with the last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debounce {
    /// The quiet time required.
    pub period: Duration,
    /// A CEL expression: one debounce per value.
    pub key: Option<String>,
    /// Run anyway after this long, however busy.
    pub timeout: Option<Duration>,
}

/// Run once per batch of up to `max_size` events or after `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Most events in one batch.
    pub max_size: u32,
    /// Longest wait for a batch to fill.
    pub timeout: Duration,
    /// A CEL expression: one batch per value.
    pub key: Option<String>,
    /// A CEL expression: only matching events are batched.
    pub if_exp: Option<String>,
}

/// Cancel running runs when a matching event arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// The event that cancels.
    pub event: String,
    /// A CEL expression over `event` (the trigger) and `async` (the cancelling event).
    pub if_exp: Option<String>,
    /// Only events within this long of the run's start cancel it.
    pub timeout: Option<Duration>,
}

impl Cancel {
    /// Cancels on each event named `event`.
    pub fn on(event: impl Into<String>) -> Self {
        Self {
            event: event.into(),
            if_exp: None,
            timeout: None,
        }
    }

    /// Sets the `if` expression.
    pub fn if_exp(mut self, expression: impl Into<String>) -> Self {
        self.if_exp = Some(expression.into());
        self
    }

    /// Matches a field between the trigger and the cancelling event (JS `match`).
    pub fn matching(self, field: &str) -> Self {
        self.if_exp(format!("event.{field} == async.{field}"))
    }

    /// Only cancels within `timeout` of the run's start.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Limits on the time to start and to finish a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Cancel a run that has not started within this long.
    pub start: Option<Duration>,
    /// Cancel a run that has not finished within this long of starting.
    pub finish: Option<Duration>,
}

/// What to do with a new run while one with the same key is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SingletonMode {
    /// Drop the new run.
    Skip,
    /// Cancel the running run and start the new one.
    Cancel,
}

/// At most one run per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Singleton {
    /// What happens to a new run.
    pub mode: SingletonMode,
    /// A CEL expression: one run per value.
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FlowControl {
    idempotency: Option<String>,
    batch: Option<Batch>,
    rate_limit: Option<RateLimit>,
    throttle: Option<Throttle>,
    concurrency: Vec<Concurrency>,
    debounce: Option<Debounce>,
    priority: Option<String>,
    timeouts: Option<Timeouts>,
    singleton: Option<Singleton>,
    cancel: Vec<Cancel>,
}

fn insert_opt(o: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        o.insert(key.to_owned(), v);
    }
}

fn str_opt(value: &Option<String>) -> Option<Value> {
    value.as_ref().map(|v| json!(v))
}

fn dur_opt(value: &Option<Duration>) -> Option<Value> {
    value.map(|d| json!(time_str(d)))
}

impl FlowControl {
    /// Adds the flow-control fields in the order the JS SDK writes them.
    fn write(&self, o: &mut Map<String, Value>) {
        insert_opt(o, "idempotency", str_opt(&self.idempotency));
        if let Some(b) = &self.batch {
            let mut v = Map::new();
            v.insert("maxSize".into(), json!(b.max_size));
            v.insert("timeout".into(), json!(time_str(b.timeout)));
            insert_opt(&mut v, "key", str_opt(&b.key));
            insert_opt(&mut v, "if", str_opt(&b.if_exp));
            o.insert("batchEvents".into(), Value::Object(v));
        }
        if let Some(r) = &self.rate_limit {
            let mut v = Map::new();
            v.insert("limit".into(), json!(r.limit));
            v.insert("period".into(), json!(time_str(r.period)));
            insert_opt(&mut v, "key", str_opt(&r.key));
            o.insert("rateLimit".into(), Value::Object(v));
        }
        if let Some(t) = &self.throttle {
            let mut v = Map::new();
            v.insert("limit".into(), json!(t.limit));
            v.insert("period".into(), json!(time_str(t.period)));
            insert_opt(&mut v, "key", str_opt(&t.key));
            insert_opt(&mut v, "burst", t.burst.map(|b| json!(b)));
            o.insert("throttle".into(), Value::Object(v));
        }
        if !self.concurrency.is_empty() {
            o.insert("concurrency".into(), json!(self.concurrency));
        }
        if let Some(d) = &self.debounce {
            let mut v = Map::new();
            v.insert("period".into(), json!(time_str(d.period)));
            insert_opt(&mut v, "key", str_opt(&d.key));
            insert_opt(&mut v, "timeout", dur_opt(&d.timeout));
            o.insert("debounce".into(), Value::Object(v));
        }
        if let Some(p) = &self.priority {
            o.insert("priority".into(), json!({ "run": p }));
        }
        if let Some(t) = &self.timeouts {
            let mut v = Map::new();
            insert_opt(&mut v, "start", dur_opt(&t.start));
            insert_opt(&mut v, "finish", dur_opt(&t.finish));
            o.insert("timeouts".into(), Value::Object(v));
        }
        if let Some(s) = &self.singleton {
            let mut v = Map::new();
            insert_opt(&mut v, "key", str_opt(&s.key));
            v.insert("mode".into(), json!(s.mode));
            o.insert("singleton".into(), Value::Object(v));
        }
        if !self.cancel.is_empty() {
            let list: Vec<Value> = self
                .cancel
                .iter()
                .map(|c| {
                    let mut v = Map::new();
                    v.insert("event".into(), json!(c.event));
                    insert_opt(&mut v, "timeout", dur_opt(&c.timeout));
                    insert_opt(&mut v, "if", str_opt(&c.if_exp));
                    Value::Object(v)
                })
                .collect();
            o.insert("cancel".into(), Value::Array(list));
        }
    }
}

/// Builds a [`Function`]; finish with [`FunctionBuilder::handler`].
#[derive(Clone)]
pub struct FunctionBuilder {
    id: String,
    name: String,
    triggers: Vec<Trigger>,
    retries: Option<u32>,
    flow: FlowControl,
    on_failure: Option<HandlerFn>,
}

/// A durable function served by the [`super::ServeHandler`].
#[derive(Clone)]
pub struct Function {
    id: String,
    name: String,
    triggers: Vec<Trigger>,
    retries: Option<u32>,
    flow: FlowControl,
    on_failure: Option<HandlerFn>,
    handler: HandlerFn,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("triggers", &self.triggers)
            .field("retries", &self.retries)
            .field("on_failure", &self.on_failure.is_some())
            .finish_non_exhaustive()
    }
}

/// Suffix of the id of a function's failure handler.
pub const FAILURE_SUFFIX: &str = "-failure";

impl Function {
    /// Starts a definition; `id` is stable across deploys, `name` is shown in the UI.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> FunctionBuilder {
        FunctionBuilder {
            id: id.into(),
            name: name.into(),
            triggers: Vec::new(),
            retries: None,
            flow: FlowControl::default(),
            on_failure: None,
        }
    }

    /// The function's id as declared (without the app prefix).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name shown in the Inngest UI.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What starts the function.
    pub fn triggers(&self) -> &[Trigger] {
        &self.triggers
    }

    /// Configured retries (`None`: the server default of 4).
    pub fn retries(&self) -> Option<u32> {
        self.retries
    }

    /// `<app>-<id>`, the id Inngest knows the function by.
    pub fn composite_id(&self, app_id: &str) -> String {
        format!("{app_id}-{}", self.id)
    }

    pub(crate) fn handler_fn(&self) -> &HandlerFn {
        &self.handler
    }

    pub(crate) fn failure_handler(&self) -> Option<&HandlerFn> {
        self.on_failure.as_ref()
    }

    /// The register entries of this function (and of its failure handler), with step URLs
    /// built on `app_url`.
    pub fn configs(&self, app_id: &str, app_url: &url::Url) -> Vec<Value> {
        let fn_id = self.composite_id(app_id);
        let mut main = Map::new();
        main.insert("id".into(), json!(fn_id));
        main.insert("name".into(), json!(self.name));
        main.insert(
            "triggers".into(),
            Value::Array(self.triggers.iter().map(Trigger::to_json).collect()),
        );
        main.insert("steps".into(), step_config(app_url, &fn_id, self.retries));
        self.flow.write(&mut main);
        let mut out = vec![Value::Object(main)];
        if self.on_failure.is_some() {
            let failure_id = format!("{fn_id}{FAILURE_SUFFIX}");
            out.push(json!({
                "id": failure_id,
                "name": format!("{} (failure)", self.name),
                "triggers": [{
                    "event": FUNCTION_FAILED_EVENT,
                    "expression": format!("event.data.function_id == '{fn_id}'"),
                }],
                "steps": step_config(app_url, &failure_id, Some(1)),
            }));
        }
        out
    }
}

/// The step URL: the app URL without stale `deployId`/`fnId`/`stepId`, plus this function's.
pub(crate) fn step_url(app_url: &url::Url, fn_id: &str) -> url::Url {
    let mut url = app_url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !matches!(k.as_ref(), "deployId" | "fnId" | "stepId"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("fnId", fn_id);
        q.append_pair("stepId", DISCOVERY_STEP_ID);
    }
    url
}

fn step_config(app_url: &url::Url, fn_id: &str, retries: Option<u32>) -> Value {
    let mut step = Map::new();
    step.insert("id".into(), json!(DISCOVERY_STEP_ID));
    step.insert("name".into(), json!(DISCOVERY_STEP_ID));
    step.insert(
        "runtime".into(),
        json!({ "type": "http", "url": step_url(app_url, fn_id).as_str() }),
    );
    if let Some(attempts) = retries {
        step.insert("retries".into(), json!({ "attempts": attempts }));
    }
    json!({ DISCOVERY_STEP_ID: step })
}

impl FunctionBuilder {
    /// Adds a trigger (at least one is required).
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.triggers.push(trigger);
        self
    }

    /// Number of retries after the first attempt (0–20; the server default is 4).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Adds a concurrency limit (at most two apply).
    pub fn concurrency(mut self, limit: Concurrency) -> Self {
        self.flow.concurrency.push(limit);
        self
    }

    /// Throttles run starts.
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.flow.throttle = Some(throttle);
        self
    }

    /// Rate-limits run starts.
    pub fn rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.flow.rate_limit = Some(rate_limit);
        self
    }

    /// Debounces runs.
    pub fn debounce(mut self, debounce: Debounce) -> Self {
        self.flow.debounce = Some(debounce);
        self
    }

    /// At most one run per value of this CEL expression per 24 h.
    pub fn idempotency(mut self, key_expression: impl Into<String>) -> Self {
        self.flow.idempotency = Some(key_expression.into());
        self
    }

    /// Cancels runs on an event (repeatable).
    pub fn cancel_on(mut self, cancel: Cancel) -> Self {
        self.flow.cancel.push(cancel);
        self
    }

    /// Batches events into one run.
    pub fn batch_events(mut self, batch: Batch) -> Self {
        self.flow.batch = Some(batch);
        self
    }

    /// A CEL expression giving a priority between -600 and 600 (seconds).
    pub fn priority(mut self, run_expression: impl Into<String>) -> Self {
        self.flow.priority = Some(run_expression.into());
        self
    }

    /// Sets start and finish timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.flow.timeouts = Some(timeouts);
        self
    }

    /// Makes the function a singleton.
    pub fn singleton(mut self, singleton: Singleton) -> Self {
        self.flow.singleton = Some(singleton);
        self
    }

    /// Registers `<id>-failure`, run with the `inngest/function.failed` event when a run of this
    /// function fails for good.
    pub fn on_failure<F, Fut, T>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx, Step) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, FnError>> + Send + 'static,
        T: Serialize,
    {
        self.on_failure = Some(erase(handler));
        self
    }

    /// Finishes the definition with its handler.
    pub fn handler<F, Fut, T>(self, handler: F) -> Function
    where
        F: Fn(Ctx, Step) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, FnError>> + Send + 'static,
        T: Serialize,
    {
        Function {
            id: self.id,
            name: self.name,
            triggers: self.triggers,
            retries: self.retries,
            flow: self.flow,
            on_failure: self.on_failure,
            handler: erase(handler),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> Function {
        Function::new("configured", "Configured Fn")
            .trigger(Trigger::event_if("app/configured", "event.data.ok == true"))
            .trigger(Trigger::cron("0 * * * *"))
            .retries(7)
            .idempotency("event.data.order_id")
            .batch_events(Batch {
                max_size: 10,
                timeout: Duration::from_secs(5),
                key: Some("event.data.user_id".into()),
                if_exp: None,
            })
            .rate_limit(RateLimit {
                limit: 1,
                period: Duration::from_secs(3600),
                key: Some("event.data.user_id".into()),
            })
            .throttle(Throttle {
                limit: 10,
                period: Duration::from_secs(60),
                burst: Some(2),
                key: Some("event.data.user_id".into()),
            })
            .concurrency(Concurrency::new(5).key("event.data.user_id"))
            .concurrency(
                Concurrency::new(100)
                    .scope(ConcurrencyScope::Env)
                    .key("\"global\""),
            )
            .debounce(Debounce {
                period: Duration::from_secs(10),
                key: Some("event.data.user_id".into()),
                timeout: Some(Duration::from_secs(60)),
            })
            .priority("event.data.priority")
            .timeouts(Timeouts {
                start: Some(Duration::from_secs(60)),
                finish: Some(Duration::from_secs(3600)),
            })
            .cancel_on(
                Cancel::on("app/cancel")
                    .timeout(Duration::from_secs(86_400))
                    .if_exp("event.data.user_id == async.data.user_id"),
            )
            .on_failure(|ctx: Ctx, _step: Step| async move {
                Ok(json!({ "handled": ctx.event.data["function_id"] }))
            })
            .handler(|_ctx: Ctx, _step: Step| async move { Ok(json!(null)) })
    }

    /// The JS SDK's register entries for the same definitions, from the reference transcript.
    fn js_functions() -> Vec<Value> {
        let v: Value = serde_json::from_str(include_str!("testdata/inngest-test-vectors.json"))
            .expect("vectors");
        let exchange = v["golden_signed_exchanges"]
            .as_array()
            .expect("array")
            .iter()
            .find(|e| e["label"] == "PUT in-band sync")
            .expect("in-band exchange");
        let body: Value =
            serde_json::from_str(exchange["response_body"].as_str().expect("body")).expect("json");
        body["functions"].as_array().expect("functions").clone()
    }

    #[test]
    fn configured_function_matches_the_js_register_entries() {
        let url = url::Url::parse("http://127.0.0.1:3939/api/inngest").expect("url");
        let ours = configured().configs("my-app", &url);
        let js = js_functions();
        let theirs: Vec<&Value> = js
            .iter()
            .filter(|f| {
                let id = f["id"].as_str().unwrap_or_default();
                id.starts_with("my-app-configured")
            })
            .collect();
        assert_eq!(ours.len(), 2);
        assert_eq!(&ours[0], theirs[0]);
        assert_eq!(&ours[1], theirs[1]);
    }

    #[test]
    fn step_urls_drop_deploy_id_and_stale_ids() {
        let url = url::Url::parse("http://h/api/inngest?deployId=d&fnId=old&x=1").expect("url");
        assert_eq!(
            step_url(&url, "app-f").as_str(),
            "http://h/api/inngest?x=1&fnId=app-f&stepId=step"
        );
    }
}
