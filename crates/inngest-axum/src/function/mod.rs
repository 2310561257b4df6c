//! Function definitions: id, name, triggers, retries, flow control and handlers, and their
//! register JSON. The types of the options a function is configured with (triggers and flow
//! control) live in a module of their own and are re-exported here.

mod options;

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::FnError;
use super::protocol::{DISCOVERY_STEP_ID, Event, FUNCTION_FAILED_EVENT};
use super::step::Step;
use options::FlowControl;
pub use options::{
    Batch, Cancel, Concurrency, ConcurrencyScope, Debounce, RateLimit, Singleton, SingletonMode,
    Throttle, Timeouts, Trigger,
};

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
    use std::time::Duration;

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
        let v: Value = serde_json::from_str(include_str!("../testdata/inngest-test-vectors.json"))
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
