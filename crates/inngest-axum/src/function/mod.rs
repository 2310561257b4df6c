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
    /// Everything but the handler, as the builder gathered it.
    def: FunctionBuilder,
    handler: HandlerFn,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("id", &self.def.id)
            .field("name", &self.def.name)
            .field("triggers", &self.def.triggers)
            .field("retries", &self.def.retries)
            .field("on_failure", &self.def.on_failure.is_some())
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
        &self.def.id
    }

    /// The name shown in the Inngest UI.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// What starts the function.
    pub fn triggers(&self) -> &[Trigger] {
        &self.def.triggers
    }

    /// Configured retries (`None`: the server default of 4).
    pub fn retries(&self) -> Option<u32> {
        self.def.retries
    }

    /// `<app>-<id>`, the id Inngest knows the function by.
    pub fn composite_id(&self, app_id: &str) -> String {
        format!("{app_id}-{}", self.def.id)
    }

    pub(crate) fn handler_fn(&self) -> &HandlerFn {
        &self.handler
    }

    pub(crate) fn failure_handler(&self) -> Option<&HandlerFn> {
        self.def.on_failure.as_ref()
    }

    /// The register entries of this function (and of its failure handler), with step URLs
    /// built on `app_url`.
    pub fn configs(&self, app_id: &str, app_url: &url::Url) -> Vec<Value> {
        let fn_id = self.composite_id(app_id);
        let mut main = Map::new();
        main.insert("id".into(), json!(fn_id));
        main.insert("name".into(), json!(self.def.name));
        main.insert(
            "triggers".into(),
            Value::Array(self.def.triggers.iter().map(Trigger::to_json).collect()),
        );
        main.insert(
            "steps".into(),
            step_config(app_url, &fn_id, self.def.retries),
        );
        self.def.flow.write(&mut main);
        let mut out = vec![Value::Object(main)];
        if self.def.on_failure.is_some() {
            let failure_id = format!("{fn_id}{FAILURE_SUFFIX}");
            out.push(json!({
                "id": failure_id,
                "name": format!("{} (failure)", self.def.name),
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
    let mut url = without_params(app_url.clone(), &["deployId", "fnId", "stepId"]);
    url.query_pairs_mut()
        .append_pair("fnId", fn_id)
        .append_pair("stepId", DISCOVERY_STEP_ID);
    url
}

/// `url` without the query parameters named in `stale`; the others keep their order.
pub(crate) fn without_params(mut url: url::Url, stale: &[&str]) -> url::Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !stale.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
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
    /// Every flow-control option is set through here.
    fn flow(mut self, set: impl FnOnce(&mut FlowControl)) -> Self {
        set(&mut self.flow);
        self
    }

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
    pub fn concurrency(self, limit: Concurrency) -> Self {
        self.flow(|f| f.concurrency.push(limit))
    }

    /// Throttles run starts.
    pub fn throttle(self, throttle: Throttle) -> Self {
        self.flow(|f| f.throttle = Some(throttle))
    }

    /// Rate-limits run starts.
    pub fn rate_limit(self, rate_limit: RateLimit) -> Self {
        self.flow(|f| f.rate_limit = Some(rate_limit))
    }

    /// Debounces runs.
    pub fn debounce(self, debounce: Debounce) -> Self {
        self.flow(|f| f.debounce = Some(debounce))
    }

    /// At most one run per value of this CEL expression per 24 h.
    pub fn idempotency(self, key_expression: impl Into<String>) -> Self {
        self.flow(|f| f.idempotency = Some(key_expression.into()))
    }

    /// Cancels runs on an event (repeatable).
    pub fn cancel_on(self, cancel: Cancel) -> Self {
        self.flow(|f| f.cancel.push(cancel))
    }

    /// Batches events into one run.
    pub fn batch_events(self, batch: Batch) -> Self {
        self.flow(|f| f.batch = Some(batch))
    }

    /// A CEL expression giving a priority between -600 and 600 (seconds).
    pub fn priority(self, run_expression: impl Into<String>) -> Self {
        self.flow(|f| f.priority = Some(run_expression.into()))
    }

    /// Sets start and finish timeouts.
    pub fn timeouts(self, timeouts: Timeouts) -> Self {
        self.flow(|f| f.timeouts = Some(timeouts))
    }

    /// Makes the function a singleton.
    pub fn singleton(self, singleton: Singleton) -> Self {
        self.flow(|f| f.singleton = Some(singleton))
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
            def: self,
            handler: erase(handler),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_urls_drop_deploy_id_and_stale_ids() {
        let url = url::Url::parse("http://h/api/inngest?deployId=d&fnId=old&x=1").expect("url");
        assert_eq!(
            step_url(&url, "app-f").as_str(),
            "http://h/api/inngest?x=1&fnId=app-f&stepId=step"
        );
    }
}
