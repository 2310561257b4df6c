//! The run state machine. It is pure: `apply(run, input, ctx)` takes the stored run and one
//! input (an SDK answer, a resumed step, a cancellation) and returns the new run and the
//! [`Action`]s the driver must persist and carry out. No I/O, no clock, no randomness: the
//! caller passes the time and the retry jitter in [`Ctx`].

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::opcode::{CallOutcome, SdkResponse, error_value};
use answer::{Answer, CallInfo};
use inngest_axum::protocol::{
    DISCOVERY_STEP_ID, FUNCTION_CANCELLED_EVENT, FUNCTION_FAILED_EVENT, FUNCTION_FINISHED_EVENT,
};

/// Delay after failed attempt n (0-based), as the server's `TableBackoff`.
const BACKOFF: [i64; 10] = [15, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200];

pub fn backoff(attempt: u32) -> Duration {
    Duration::seconds(BACKOFF[(attempt as usize).min(BACKOFF.len() - 1)])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// What an unfinished step is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pending {
    Planned,
    Sleep,
    Wait,
    Invoke,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub run_id: String,
    pub step_id: String,
}

/// One line of a run's history: a step attempt, a schedule, a resume, the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub step_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    pub op: String,
    pub attempt: u32,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<Value>,
    /// When the next attempt, timer or timeout is due.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Retrying,
    Failed,
    Planned,
    Sleeping,
    Waiting,
    Invoking,
    Resumed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub id: String,
    pub app_id: String,
    pub function_id: String,
    pub status: RunStatus,
    pub event: Value,
    pub events: Vec<Value>,
    /// Memoized step values by hashed id, in the wire shape of reference §3.5.
    pub steps: Map<String, Value>,
    /// Completion order of memoized steps.
    pub stack: Vec<String>,
    /// Request version chosen by the SDK; -1 until it answers.
    pub version: i64,
    /// Set once a response held several ops; sent as `disable_immediate_execution`.
    pub force_step_plan: bool,
    pub pending: BTreeMap<String, Pending>,
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent: Option<ParentRef>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rerun_of: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ended_at: Option<DateTime<Utc>>,
    pub history: Vec<HistoryEntry>,
    /// Optimistic-concurrency revision, owned by the store.
    #[serde(default)]
    pub rev: u64,
}

impl RunState {
    pub fn new(
        id: String,
        app_id: &str,
        function_id: &str,
        max_attempts: u32,
        event: Value,
        now: DateTime<Utc>,
    ) -> RunState {
        RunState {
            id,
            app_id: app_id.to_string(),
            function_id: function_id.to_string(),
            status: RunStatus::Queued,
            events: vec![event.clone()],
            event,
            steps: Map::new(),
            stack: Vec::new(),
            version: -1,
            force_step_plan: false,
            pending: BTreeMap::new(),
            max_attempts: max_attempts.max(1),
            output: None,
            error: None,
            parent: None,
            rerun_of: None,
            created_at: now,
            started_at: None,
            ended_at: None,
            history: Vec::new(),
            rev: 0,
        }
    }

    pub fn event_name(&self) -> &str {
        self.event.get("name").and_then(Value::as_str).unwrap_or("")
    }

    fn memoize(&mut self, step_id: &str, value: Value) -> bool {
        self.pending.remove(step_id);
        if self.steps.contains_key(step_id) {
            // A step saved once keeps its first result, even if a retaken call ran it again.
            return false;
        }
        self.steps.insert(step_id.to_string(), value);
        self.stack.push(step_id.to_string());
        true
    }
}

/// Why a step is resumed without a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeReason {
    SleepDone,
    EventReceived,
    TimedOut,
    InvokeFinished,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The SDK answered a call for `step_id` (`"step"` or a hashed id).
    Call {
        step_id: String,
        attempt: u32,
        outcome: CallOutcome,
        started_at: DateTime<Utc>,
        duration: Duration,
    },
    /// A sleep ended, an awaited event arrived, a wait or invoke timed out, or an invoked run
    /// finished. Ignored unless the step is still pending.
    Resume {
        step_id: String,
        value: Value,
        reason: ResumeReason,
    },
    Cancel {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    /// Random extra delay added to a backoff (0–30 s in Inngest); chosen by the caller.
    pub retry_jitter: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Queue a call for `step_id` at `at` (a retry when `attempt > 0`).
    Call {
        step_id: String,
        attempt: u32,
        at: DateTime<Utc>,
    },
    /// Resume `step_id` of this run with `value` at `at` (sleep timers).
    Resume {
        step_id: String,
        value: Value,
        at: DateTime<Utc>,
    },
    /// Create a pause; on expiry the step resumes with `null`.
    WaitForEvent {
        step_id: String,
        event: String,
        condition: Option<String>,
        expires_at: DateTime<Utc>,
    },
    /// Start `function_id` with `payload`; on expiry the step resumes with a timeout error.
    Invoke {
        step_id: String,
        function_id: String,
        payload: Value,
        expires_at: DateTime<Utc>,
    },
    /// Publish these events (ids already set, so a resend is deduplicated).
    SendEvents(Vec<Value>),
    /// Resume the step of the run that invoked this one.
    ResumeParent {
        run_id: String,
        step_id: String,
        value: Value,
    },
    /// The run reached a final status: drop its timers and pauses.
    Finished(RunStatus),
}

/// Whether [`apply`] may change `run`. It leaves a finished run as it is, and a resume of a
/// step that is no longer pending. Anything else counts as a change: it nearly always is one,
/// and an answer that only repeats what the run knows is written again harmlessly. This spares
/// the caller a copy of the run to compare with.
pub fn may_change(run: &RunState, input: &Input) -> bool {
    let stale_resume =
        matches!(input, Input::Resume { step_id, .. } if !run.pending.contains_key(step_id));
    !run.status.is_terminal() && !stale_resume
}

pub fn apply(mut run: RunState, input: Input, ctx: &Ctx) -> (RunState, Vec<Action>) {
    if run.status.is_terminal() {
        return (run, Vec::new());
    }
    let mut actions = Vec::new();
    match input {
        Input::Call {
            step_id,
            attempt,
            outcome,
            started_at,
            duration,
        } => {
            run.status = RunStatus::Running;
            run.started_at.get_or_insert(started_at);
            if run.version < 0
                && let Some(v) = outcome.request_version
            {
                run.version = v;
            }
            let answer = Answer {
                run: &mut run,
                call: CallInfo {
                    step_id,
                    attempt,
                    duration_ms: duration.num_milliseconds(),
                },
                ctx,
                actions: &mut actions,
            };
            match outcome.response {
                SdkResponse::Complete(output) => answer.complete(output),
                SdkResponse::Error(err) => answer.function_error(err),
                SdkResponse::Ops {
                    ops,
                    no_retry,
                    retry_at,
                } => answer.ops(ops, no_retry, retry_at),
            }
        }
        Input::Resume {
            step_id,
            value,
            reason,
        } => {
            if run.pending.contains_key(&step_id) {
                run.memoize(&step_id, value.clone());
                let error = match reason {
                    ResumeReason::InvokeFinished | ResumeReason::TimedOut => {
                        value.get("error").cloned()
                    }
                    _ => None,
                };
                let op = match reason {
                    ResumeReason::SleepDone => "SleepDone",
                    ResumeReason::EventReceived => "EventReceived",
                    ResumeReason::TimedOut => "TimedOut",
                    ResumeReason::InvokeFinished => "InvokeFinished",
                };
                run.history.push(HistoryEntry {
                    at: ctx.now,
                    step_id,
                    name: None,
                    op: op.into(),
                    attempt: 0,
                    outcome: Outcome::Resumed,
                    duration_ms: None,
                    error,
                    until: None,
                });
                discover_if_settled(&mut run, ctx, &mut actions);
            }
        }
        Input::Cancel { reason } => {
            let error = error_value("FunctionCancelledError", reason);
            run.history.push(HistoryEntry {
                at: ctx.now,
                step_id: DISCOVERY_STEP_ID.into(),
                name: None,
                op: "Cancel".into(),
                attempt: 0,
                outcome: Outcome::Cancelled,
                duration_ms: None,
                error: Some(error.clone()),
                until: None,
            });
            run.status = RunStatus::Cancelled;
            run.error = Some(error.clone());
            run.ended_at = Some(ctx.now);
            run.pending.clear();
            actions.push(Action::SendEvents(vec![lifecycle_event(
                &run,
                FUNCTION_CANCELLED_EVENT,
                format!("{}:cancelled", run.id),
                json!({"error": error}),
                ctx,
            )]));
            resume_parent(&run, json!({"error": error}), &mut actions);
            actions.push(Action::Finished(RunStatus::Cancelled));
        }
    }
    (run, actions)
}

/// V2 coalescing: one discovery call once no planned or async sibling is outstanding.
fn discover_if_settled(run: &mut RunState, ctx: &Ctx, actions: &mut Vec<Action>) {
    if run.pending.is_empty() && !run.status.is_terminal() {
        run.force_step_plan = false;
        actions.push(Action::Call {
            step_id: DISCOVERY_STEP_ID.into(),
            attempt: 0,
            at: ctx.now,
        });
    }
}

fn lifecycle_event(run: &RunState, name: &str, id: String, extra: Value, ctx: &Ctx) -> Value {
    let mut data = json!({
        "function_id": run.function_id,
        "run_id": run.id,
        "event": run.event,
        "events": run.events,
        "_inngest": {"status": run.status.as_str()},
    });
    if let Some(corr) = run.event.pointer("/data/_inngest/correlation_id") {
        data["correlation_id"] = corr.clone();
    }
    if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
        d.extend(e);
    }
    json!({"id": id, "name": name, "data": data, "ts": ctx.now.timestamp_millis(), "user": {}})
}

fn resume_parent(run: &RunState, value: Value, actions: &mut Vec<Action>) {
    if let Some(parent) = &run.parent {
        actions.push(Action::ResumeParent {
            run_id: parent.run_id.clone(),
            step_id: parent.step_id.clone(),
            value,
        });
    }
}

fn finish_completed(run: &mut RunState, output: Value, ctx: &Ctx, actions: &mut Vec<Action>) {
    run.status = RunStatus::Completed;
    run.output = Some(output.clone());
    run.ended_at = Some(ctx.now);
    run.pending.clear();
    actions.push(Action::SendEvents(vec![lifecycle_event(
        run,
        FUNCTION_FINISHED_EVENT,
        format!("{}:finished", run.id),
        json!({"result": output}),
        ctx,
    )]));
    resume_parent(run, json!({"data": output}), actions);
    actions.push(Action::Finished(RunStatus::Completed));
}

fn finish_failed(run: &mut RunState, error: Value, ctx: &Ctx, actions: &mut Vec<Action>) {
    run.status = RunStatus::Failed;
    run.error = Some(error.clone());
    run.ended_at = Some(ctx.now);
    run.pending.clear();
    let extra = json!({"error": error});
    actions.push(Action::SendEvents(vec![
        lifecycle_event(
            run,
            FUNCTION_FINISHED_EVENT,
            format!("{}:finished", run.id),
            extra.clone(),
            ctx,
        ),
        // Inngest gives the failure event the run id as its id, so it is sent once.
        lifecycle_event(run, FUNCTION_FAILED_EVENT, run.id.clone(), extra, ctx),
    ]));
    resume_parent(run, json!({"error": error}), actions);
    actions.push(Action::Finished(RunStatus::Failed));
}

mod answer;
#[cfg(test)]
mod tests;
