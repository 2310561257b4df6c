//! What a function is configured with: triggers and flow control (concurrency, throttling,
//! rate limits, debouncing, batching, cancellation, timeouts, singletons), and their register
//! JSON.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::protocol::time_str;

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

    pub(super) fn to_json(&self) -> Value {
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
pub(super) struct FlowControl {
    pub(super) idempotency: Option<String>,
    pub(super) batch: Option<Batch>,
    pub(super) rate_limit: Option<RateLimit>,
    pub(super) throttle: Option<Throttle>,
    pub(super) concurrency: Vec<Concurrency>,
    pub(super) debounce: Option<Debounce>,
    pub(super) priority: Option<String>,
    pub(super) timeouts: Option<Timeouts>,
    pub(super) singleton: Option<Singleton>,
    pub(super) cancel: Vec<Cancel>,
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
    pub(super) fn write(&self, o: &mut Map<String, Value>) {
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
