//! Wire types of the SDK protocol: the call request body, memoized step state, opcodes, error
//! bodies, events and the sync/introspection bodies. Both sides (this SDK and an executor) use
//! them, so every type is `Serialize + Deserialize` and lenient where the server is.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// `stepId` of a discovery call (as opposed to a targeted call with a hashed step id).
pub const DISCOVERY_STEP_ID: &str = "step";
/// The event that triggers failure handlers.
pub const FUNCTION_FAILED_EVENT: &str = "inngest/function.failed";
/// The event sent when a run ends, whatever the outcome.
pub const FUNCTION_FINISHED_EVENT: &str = "inngest/function.finished";
/// The event sent when a run is cancelled.
pub const FUNCTION_CANCELLED_EVENT: &str = "inngest/function.cancelled";
/// The event a target function receives when invoked by `step.invoke`.
pub const FUNCTION_INVOKED_EVENT: &str = "inngest/function.invoked";
/// The event that runs cron-triggered functions.
pub const SCHEDULED_TIMER_EVENT: &str = "inngest/scheduled.timer";
/// Introspection schema version.
pub const INTROSPECTION_SCHEMA_VERSION: &str = "2024-05-24";

/// The SDK's step id for a user id: lowercase hex SHA-1 of its UTF-8 bytes.
pub fn hash_step_id(id: &str) -> String {
    hex::encode(Sha1::digest(id.as_bytes()))
}

/// A duration as a time string the server parses (`1w2d3h4m5s`), as JS `timeStr` writes it:
/// whole seconds only, and anything between 0 and 1 s rounds up to `1s` (an empty string would
/// mean zero).
pub fn time_str(d: std::time::Duration) -> String {
    let mut millis = d.as_millis();
    if millis > 0 && millis < 1000 {
        millis = 1000;
    }
    let mut out = String::new();
    for (suffix, period) in [
        ("w", 604_800_000u128),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        let n = millis / period;
        if n > 0 {
            out.push_str(&format!("{n}{suffix}"));
            millis %= period;
        }
    }
    out
}

/// Opcodes the server understands (`pkg/enums/opcode.go`). Unknown strings fail to parse, as
/// they do on the server; [`Opcode::from_name`] lets an executor keep them apart instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Nothing to do (a placeholder some SDKs send).
    None,
    /// A step that ran, with its result (execution version 0/1).
    Step,
    /// A `step.run` that ran in this request, with its result.
    StepRun,
    /// A step that failed this attempt; retried unless final.
    StepError,
    /// A step found but not run: the executor calls back to run it.
    StepPlanned,
    /// `step.sleep` / `step.sleep_until`.
    Sleep,
    /// `step.wait_for_event`.
    WaitForEvent,
    /// `step.invoke`.
    InvokeFunction,
    /// An inference request run by the server (`step.ai.infer`).
    AiGateway,
    /// An HTTP request run by the server (`step.fetch`).
    Gateway,
    /// `step.waitForSignal`.
    WaitForSignal,
    /// The function returned (checkpointing SDKs).
    RunComplete,
    /// A step that failed for good.
    StepFailed,
    /// The function returned within a synchronous run.
    SyncRunComplete,
    /// Asks for a discovery call.
    DiscoveryRequest,
    /// Adds deferred work.
    DeferAdd,
    /// Aborts deferred work.
    DeferAbort,
}

impl Opcode {
    /// Every opcode, in the server's order.
    pub const ALL: [Opcode; 17] = [
        Opcode::None,
        Opcode::Step,
        Opcode::StepRun,
        Opcode::StepError,
        Opcode::StepPlanned,
        Opcode::Sleep,
        Opcode::WaitForEvent,
        Opcode::InvokeFunction,
        Opcode::AiGateway,
        Opcode::Gateway,
        Opcode::WaitForSignal,
        Opcode::RunComplete,
        Opcode::StepFailed,
        Opcode::SyncRunComplete,
        Opcode::DiscoveryRequest,
        Opcode::DeferAdd,
        Opcode::DeferAbort,
    ];

    /// The name on the wire (`op` of a generator opcode).
    pub fn name(self) -> &'static str {
        match self {
            Opcode::None => "None",
            Opcode::Step => "Step",
            Opcode::StepRun => "StepRun",
            Opcode::StepError => "StepError",
            Opcode::StepPlanned => "StepPlanned",
            Opcode::Sleep => "Sleep",
            Opcode::WaitForEvent => "WaitForEvent",
            Opcode::InvokeFunction => "InvokeFunction",
            Opcode::AiGateway => "AIGateway",
            Opcode::Gateway => "Gateway",
            Opcode::WaitForSignal => "WaitForSignal",
            Opcode::RunComplete => "RunComplete",
            Opcode::StepFailed => "StepFailed",
            Opcode::SyncRunComplete => "SyncRunComplete",
            Opcode::DiscoveryRequest => "DiscoveryRequest",
            Opcode::DeferAdd => "DeferAdd",
            Opcode::DeferAbort => "DeferAbort",
        }
    }

    /// The opcode with this wire name, if the protocol defines one (case-sensitive).
    pub fn from_name(name: &str) -> Option<Opcode> {
        Opcode::ALL.into_iter().find(|op| op.name() == name)
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Opcode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Opcode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Opcode::from_name(&name).ok_or_else(|| {
            let names: Vec<&'static str> = Opcode::ALL.iter().map(|op| op.name()).collect();
            serde::de::Error::custom(format!(
                "unknown opcode `{name}`, expected one of {}",
                names.join(", ")
            ))
        })
    }
}

/// An event as sent to and received from Inngest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default)]
    /// The event name, e.g. `app/user.created`.
    pub name: String,
    #[serde(default = "empty_object")]
    /// The payload (an object).
    pub data: Value,
    /// Idempotency key: events with the same id are deduplicated for 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// A schema version of the payload, chosen by the sender.
    pub v: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Data about the user who caused the event (encrypted at rest by Inngest).
    pub user: Option<Value>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl Event {
    /// An event named `name` carrying `data`.
    pub fn new(name: impl Into<String>, data: Value) -> Self {
        Self {
            name: name.into(),
            data,
            id: None,
            ts: None,
            v: None,
            user: None,
        }
    }

    /// Sets the idempotency id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn with_ts(mut self, ts_millis: i64) -> Self {
        self.ts = Some(ts_millis);
        self
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new("", empty_object())
    }
}

/// The order in which memoized steps completed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStack {
    #[serde(default)]
    /// Hashed ids of the memoized steps, oldest first.
    pub stack: Vec<String>,
    #[serde(default)]
    /// How many of them the SDK should treat as reported.
    pub current: usize,
}

/// `ctx` of a call request. Missing fields default as in the JS SDK.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallContext {
    #[serde(default)]
    /// The run's id.
    pub run_id: String,
    #[serde(default)]
    /// Zero-based attempt of this call.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Retries + 1.
    pub max_attempts: Option<u32>,
    #[serde(default)]
    /// `true` asks the SDK to report steps instead of running one in the same request.
    pub disable_immediate_execution: bool,
    #[serde(default)]
    /// `true` tells the SDK to load the event and steps through the API (payload too large).
    pub use_api: bool,
    #[serde(default)]
    /// The order of memoized steps.
    pub stack: CallStack,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The hashed step id the call targets (`step` for discovery).
    pub step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Inngest's internal function id.
    pub fn_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The Inngest environment.
    pub env: Option<String>,
}

/// Body of a call request (`POST ?fnId=…&stepId=…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    #[serde(default)]
    /// The run's context.
    pub ctx: CallContext,
    #[serde(default)]
    /// The triggering event.
    pub event: Event,
    #[serde(default)]
    /// Every event of the batch.
    pub events: Vec<Event>,
    #[serde(default)]
    /// Memoized step state by hashed step id.
    pub steps: Map<String, Value>,
    #[serde(default = "default_version")]
    /// The execution version the run uses (`-1` before the SDK chose one).
    pub version: i64,
    #[serde(default)]
    /// See [`CallContext::use_api`].
    pub use_api: bool,
}

fn default_version() -> i64 {
    -1
}

/// A memoized step value, decoded with the JS SDK's rule: an object whose only key (besides an
/// optional `type`) is `data`, `error` or `input` is unwrapped; anything else is data as-is
/// (wait-for-event results are raw events, sleeps and timeouts are `null`).
#[derive(Debug, Clone, PartialEq)]
pub enum Memoized {
    /// A step's result.
    Data(Value),
    /// A step's final error.
    Error(ErrorBody),
    /// Input recorded for a step that has not run yet: not memoized.
    Input(Value),
}

impl Memoized {
    /// Decodes one entry of `steps`.
    pub fn decode(value: &Value) -> Self {
        if let Value::Object(map) = value {
            let keys: Vec<&str> = map
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "type")
                .collect();
            if let [only] = keys.as_slice() {
                let inner = map.get(*only).cloned().unwrap_or(Value::Null);
                match *only {
                    "data" => return Memoized::Data(inner),
                    "error" => return Memoized::Error(ErrorBody::from_value(inner)),
                    "input" => return Memoized::Input(inner),
                    _ => {}
                }
            }
        }
        Memoized::Data(value.clone())
    }
}

/// A serialized error: `{name, message, stack?}` plus anything else the sender added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default = "default_error_name")]
    /// The error's class, e.g. `Error`.
    pub name: String,
    #[serde(default)]
    /// What went wrong.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// A stack trace, when the sender has one.
    pub stack: Option<String>,
    #[serde(flatten)]
    /// Any other fields the sender set.
    pub extra: Map<String, Value>,
}

fn default_error_name() -> String {
    "Error".to_owned()
}

impl ErrorBody {
    /// An error without a stack.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
            stack: None,
            extra: Map::new(),
        }
    }

    /// Lenient decoding: a string becomes the message, a non-object becomes its JSON text.
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(_) => serde_json::from_value(value.clone())
                .unwrap_or_else(|_| Self::new("Error", value.to_string())),
            Value::String(message) => Self::new("Error", message),
            other => Self::new("Error", other.to_string()),
        }
    }
}

/// `userland` of an op: the id the user wrote and its repeat index (only when > 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Userland {
    /// The id as written in code.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Which repetition of that id (0 is left out).
    pub index: Option<u32>,
}

/// Start (unix ns) and duration (ns) of a step execution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Start, Unix nanoseconds.
    pub a: i64,
    /// Duration, nanoseconds.
    pub b: i64,
}

/// One opcode of a `206` response (`GeneratorOpcode`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingOp {
    /// The hashed step id.
    pub id: String,
    /// What happened.
    pub op: Opcode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The step's name (for sleeps and waits: the duration or the event).
    pub name: Option<String>,
    #[serde(
        rename = "displayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    /// The name shown in the UI.
    pub display_name: Option<String>,
    #[serde(default = "empty_object")]
    /// Opcode options (`duration`, `event`, `timeout`, `if`, `function_id`, …).
    pub opts: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The id as written in code.
    pub userland: Option<Userland>,
    #[serde(default)]
    /// The step's result.
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The step's error.
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When the step ran.
    pub timing: Option<Timing>,
}

impl OutgoingOp {
    /// Reads `opts.<key>` as a string.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.opts.get(key).and_then(Value::as_str)
    }

    /// Sleep duration or instant: `opts.duration`, falling back to `name` (server `SleepDuration`).
    pub fn sleep_spec(&self) -> Option<&str> {
        self.opt_str("duration").or(self.name.as_deref())
    }

    /// Event a wait waits for: `opts.event`, falling back to `name`.
    pub fn wait_event(&self) -> Option<&str> {
        self.opt_str("event").or(self.name.as_deref())
    }
}

/// Decodes a `206` body: an array of ops, or a single legacy object.
pub fn decode_ops(body: &[u8]) -> Result<Vec<OutgoingOp>, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    match value {
        Value::Array(_) => serde_json::from_value(value),
        other => Ok(vec![serde_json::from_value(other)?]),
    }
}

/// Reply of `POST /fn/register`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegisterReply {
    #[serde(default)]
    /// Whether the sync was accepted.
    pub ok: Option<bool>,
    #[serde(default)]
    /// Whether the app's configuration changed.
    pub modified: bool,
    #[serde(default)]
    /// Whether Inngest skipped the sync (nothing changed).
    pub skipped: bool,
    #[serde(default)]
    /// Why the sync failed.
    pub error: Option<String>,
    #[serde(default)]
    /// The app's internal id.
    pub app_id: Option<String>,
    #[serde(default)]
    /// The id of this sync.
    pub sync_id: Option<String>,
}

/// Reply of `POST /e/{key}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendEventReply {
    #[serde(default)]
    /// Ids of the events, in the order sent.
    pub ids: Vec<String>,
    #[serde(default)]
    /// The HTTP status, as echoed in the body.
    pub status: Option<u16>,
    #[serde(default)]
    /// Why the events were refused.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_step_id_vector_matches() {
        let v: Value = serde_json::from_str(include_str!("testdata/inngest-test-vectors.json"))
            .expect("vectors");
        let list = v["step_id_hashes"].as_array().expect("array");
        assert!(list.len() >= 13);
        for case in list {
            assert_eq!(
                hash_step_id(case["id"].as_str().expect("id")),
                case["sha1"].as_str().expect("sha1")
            );
        }
    }

    #[test]
    fn time_strings_match_js() {
        use std::time::Duration;
        let cases = [
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(300), "1s"),
            (Duration::from_millis(1500), "1s"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_secs(8 * 86_400 + 3_600 + 5), "1w1d1h5s"),
            (Duration::ZERO, ""),
        ];
        for (d, expected) in cases {
            assert_eq!(time_str(d), expected, "{d:?}");
        }
    }

    #[test]
    fn memoized_values_decode_like_js() {
        assert_eq!(
            Memoized::decode(&json!({"data": 1})),
            Memoized::Data(json!(1))
        );
        assert_eq!(
            Memoized::decode(&json!({"data": null})),
            Memoized::Data(Value::Null)
        );
        assert_eq!(
            Memoized::decode(&json!({"data": 2, "type": "data"})),
            Memoized::Data(json!(2))
        );
        assert_eq!(Memoized::decode(&Value::Null), Memoized::Data(Value::Null));
        let event = json!({"name": "a", "data": {"x": 1}, "id": "1", "ts": 5});
        assert_eq!(Memoized::decode(&event), Memoized::Data(event.clone()));
        match Memoized::decode(&json!({"error": {"name": "E", "message": "m", "noRetry": true}})) {
            Memoized::Error(e) => {
                assert_eq!((e.name.as_str(), e.message.as_str()), ("E", "m"));
                assert_eq!(e.extra.get("noRetry"), Some(&json!(true)));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            Memoized::decode(&json!({"error": "text"})),
            Memoized::Error(e) if e.message == "text"
        ));
        assert_eq!(
            Memoized::decode(&json!({"input": [1]})),
            Memoized::Input(json!([1]))
        );
    }

    #[test]
    fn ops_decode_from_array_or_object_and_reject_unknown_opcodes() {
        let one = br#"{"id":"x","op":"Sleep","name":"1m","opts":{}}"#;
        let ops = decode_ops(one).expect("object");
        assert_eq!(ops[0].sleep_spec(), Some("1m"));
        let many =
            br#"[{"id":"x","op":"WaitForEvent","name":"n","opts":{"event":"e","timeout":"1s"}}]"#;
        assert_eq!(decode_ops(many).expect("array")[0].wait_event(), Some("e"));
        assert!(decode_ops(br#"[{"id":"x","op":"StepNotFound"}]"#).is_err());
        assert!(decode_ops(b"[]").expect("empty").is_empty());
    }

    #[test]
    fn call_request_tolerates_missing_fields() {
        let req: CallRequest =
            serde_json::from_str(r#"{"event":{"name":"a"},"steps":{}}"#).expect("parse");
        assert_eq!(req.ctx.attempt, 0);
        assert_eq!(req.version, -1);
        assert!(req.events.is_empty());
        assert_eq!(req.event.data, json!({}));
    }
}
