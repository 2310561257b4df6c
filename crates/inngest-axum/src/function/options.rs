//! What a function is configured with: triggers and flow control (concurrency, throttling,
//! rate limits, debouncing, batching, cancellation, timeouts, singletons), and their register
//! JSON.

use std::time::Duration;

use serde::{Serialize, Serializer};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throttle {
    /// Runs started per `period`.
    pub limit: u32,
    /// The window.
    #[serde(serialize_with = "period")]
    pub period: Duration,
    /// A CEL expression: one limit per value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Runs allowed in a burst above the rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// Drop runs beyond `limit` per `period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Runs started per `period`; more are dropped.
    pub limit: u32,
    /// The window.
    #[serde(serialize_with = "period")]
    pub period: Duration,
    /// A CEL expression: one limit per value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Wait for `period` of quiet before running with the last event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Debounce {
    /// The quiet time required.
    #[serde(serialize_with = "period")]
    pub period: Duration,
    /// A CEL expression: one debounce per value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Run anyway after this long, however busy.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_period"
    )]
    pub timeout: Option<Duration>,
}

/// Run once per batch of up to `max_size` events or after `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    /// Most events in one batch.
    #[serde(rename = "maxSize")]
    pub max_size: u32,
    /// Longest wait for a batch to fill.
    #[serde(serialize_with = "period")]
    pub timeout: Duration,
    /// A CEL expression: one batch per value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A CEL expression: only matching events are batched.
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    pub if_exp: Option<String>,
}

/// Cancel running runs when a matching event arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancel {
    /// The event that cancels.
    pub event: String,
    /// Only events within this long of the run's start cancel it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_period"
    )]
    pub timeout: Option<Duration>,
    /// A CEL expression over `event` (the trigger) and `async` (the cancelling event).
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    pub if_exp: Option<String>,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// Cancel a run that has not started within this long.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_period"
    )]
    pub start: Option<Duration>,
    /// Cancel a run that has not finished within this long of starting.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_period"
    )]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Singleton {
    /// A CEL expression: one run per value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What happens to a new run.
    pub mode: SingletonMode,
}

/// The flow-control fields of a register entry, serialized in the order the JS SDK writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FlowControl {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) idempotency: Option<String>,
    #[serde(rename = "batchEvents", skip_serializing_if = "Option::is_none")]
    pub(super) batch: Option<Batch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) rate_limit: Option<RateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) throttle: Option<Throttle>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) concurrency: Vec<Concurrency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) debounce: Option<Debounce>,
    /// A CEL expression, written as `{"run": expression}`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "run_priority"
    )]
    pub(super) priority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) timeouts: Option<Timeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) singleton: Option<Singleton>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) cancel: Vec<Cancel>,
}

impl FlowControl {
    /// Adds the flow-control fields that are set to a register entry.
    pub(super) fn write(&self, entry: &mut Map<String, Value>) {
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            entry.extend(fields);
        }
    }
}

/// A duration as the register body writes it (`30s`, `1h30m`).
fn period<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time_str(*d))
}

/// [`period`] for an optional duration that is skipped when `None`.
fn some_period<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => period(d, s),
        None => s.serialize_none(),
    }
}

fn run_priority<S: Serializer>(run: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    json!({ "run": run }).serialize(s)
}
