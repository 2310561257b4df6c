//! Operating the durable-function runs of the embedded executor: what `GET /api/runs` and
//! `ticketing runs` show (the same views), how a function name and a status filter are read,
//! and the plain-text rendering for the terminal.

use crate::functions::APP_ID;
use crate::inngest::executor::{Executor, HistoryEntry, Outcome, RunState, RunStatus, RunSummary};
use crate::inngest::protocol::DISCOVERY_STEP_ID;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;

/// A run's status, as filters and views spell it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum RunStatusName {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl From<RunStatusName> for RunStatus {
    fn from(s: RunStatusName) -> RunStatus {
        match s {
            RunStatusName::Queued => RunStatus::Queued,
            RunStatusName::Running => RunStatus::Running,
            RunStatusName::Completed => RunStatus::Completed,
            RunStatusName::Failed => RunStatus::Failed,
            RunStatusName::Cancelled => RunStatus::Cancelled,
        }
    }
}

impl From<RunStatus> for RunStatusName {
    fn from(s: RunStatus) -> RunStatusName {
        match s {
            RunStatus::Queued => RunStatusName::Queued,
            RunStatus::Running => RunStatusName::Running,
            RunStatus::Completed => RunStatusName::Completed,
            RunStatus::Failed => RunStatusName::Failed,
            RunStatus::Cancelled => RunStatusName::Cancelled,
        }
    }
}

/// A function filter that names no registered function.
#[derive(Debug, thiserror::Error)]
#[error("unknown function {given:?}; known: {}", known.join(", "))]
pub struct UnknownFunction {
    pub given: String,
    pub known: Vec<String>,
}

/// The executor's id for a function given as `on-ticket-created` or `ticketing-on-ticket-created`.
pub fn resolve_function(executor: &Executor, name: &str) -> Result<String, UnknownFunction> {
    let ids = executor.function_ids();
    let name = name.trim();
    let composite = format!("{APP_ID}-{name}");
    ids.iter()
        .find(|id| *id == name || **id == composite)
        .cloned()
        .ok_or_else(|| UnknownFunction {
            given: name.to_owned(),
            known: ids.iter().map(|id| short_name(id).to_owned()).collect(),
        })
}

/// `on-ticket-created` for `ticketing-on-ticket-created`.
fn short_name(function_id: &str) -> &str {
    function_id
        .strip_prefix(APP_ID)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(function_id)
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunSummaryView {
    pub id: String,
    /// The function's name in this app, e.g. `on-ticket-created`.
    pub function: String,
    /// The id the executor knows it by (app id + name).
    pub function_id: String,
    pub status: RunStatusName,
    pub event_name: String,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<&RunSummary> for RunSummaryView {
    fn from(r: &RunSummary) -> Self {
        RunSummaryView {
            id: r.id.clone(),
            function: short_name(&r.function_id).to_owned(),
            function_id: r.function_id.clone(),
            status: r.status.into(),
            event_name: r.event_name.clone(),
            created_at: r.created_at,
            ended_at: r.ended_at,
        }
    }
}

/// One step of a run: every attempt folded together.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StepView {
    /// The hashed step id the SDK reports.
    pub id: String,
    pub name: Option<String>,
    /// The last opcode seen for it (`StepRun`, `Sleep`, `WaitForEvent`, ...).
    pub op: String,
    /// The last outcome: `completed`, `retrying`, `failed`, `sleeping`, `waiting`, ...
    pub status: String,
    /// Calls made for this step, retries included.
    pub attempts: u32,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// Time spent in calls for this step, all attempts together.
    pub duration_ms: i64,
    /// The error of the last failed attempt.
    pub error: Option<Value>,
    /// When the next attempt, the timer or the timeout is due.
    pub until: Option<DateTime<Utc>>,
    /// The saved result (`{"data": ...}` or `{"error": ...}`), once there is one.
    pub result: Option<Value>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryView {
    pub at: DateTime<Utc>,
    pub step_id: String,
    pub name: Option<String>,
    pub op: String,
    pub attempt: u32,
    pub outcome: String,
    pub duration_ms: Option<i64>,
    pub error: Option<Value>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub summary: RunSummaryView,
    /// The triggering event.
    pub event: Value,
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub output: Option<Value>,
    pub error: Option<Value>,
    /// The run this one re-runs.
    pub rerun_of: Option<String>,
    /// The run that invoked this one.
    pub parent_run_id: Option<String>,
    pub steps: Vec<StepView>,
    /// Every attempt, schedule and resume, oldest first.
    pub history: Vec<HistoryView>,
}

fn outcome_name(o: Outcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{o:?}").to_lowercase())
}

fn is_attempt(e: &HistoryEntry) -> bool {
    matches!(
        e.outcome,
        Outcome::Completed | Outcome::Retrying | Outcome::Failed
    )
}

impl From<&RunState> for RunView {
    fn from(run: &RunState) -> Self {
        let mut steps: Vec<StepView> = Vec::new();
        // Entries of the discovery call without an op are about the function as a whole; the
        // run's `error` and the history carry them.
        for e in run
            .history
            .iter()
            .filter(|e| e.step_id != DISCOVERY_STEP_ID)
        {
            let i = match steps.iter().position(|s| s.id == e.step_id) {
                Some(i) => i,
                None => {
                    steps.push(StepView {
                        id: e.step_id.clone(),
                        name: None,
                        op: String::new(),
                        status: String::new(),
                        attempts: 0,
                        first_at: e.at,
                        last_at: e.at,
                        duration_ms: 0,
                        error: None,
                        until: None,
                        result: run.steps.get(&e.step_id).cloned(),
                    });
                    steps.len() - 1
                }
            };
            let s = &mut steps[i];
            if e.name.is_some() {
                s.name = e.name.clone();
            }
            s.op = e.op.clone();
            s.status = outcome_name(e.outcome);
            if is_attempt(e) {
                s.attempts = s.attempts.max(e.attempt + 1);
                s.duration_ms += e.duration_ms.unwrap_or(0);
            }
            s.last_at = e.at;
            if e.error.is_some() {
                s.error = e.error.clone();
            }
            s.until = e.until;
        }
        let started = run.started_at.unwrap_or(run.created_at);
        RunView {
            summary: RunSummaryView::from(&RunSummary::of(run)),
            event: run.event.clone(),
            started_at: run.started_at,
            duration_ms: run.ended_at.map(|end| (end - started).num_milliseconds()),
            output: run.output.clone(),
            error: run.error.clone(),
            rerun_of: run.rerun_of.clone(),
            parent_run_id: run.parent.as_ref().map(|p| p.run_id.clone()),
            steps,
            history: run
                .history
                .iter()
                .map(|e| HistoryView {
                    at: e.at,
                    step_id: e.step_id.clone(),
                    name: e.name.clone(),
                    op: e.op.clone(),
                    attempt: e.attempt,
                    outcome: outcome_name(e.outcome),
                    duration_ms: e.duration_ms,
                    error: e.error.clone(),
                    until: e.until,
                })
                .collect(),
        }
    }
}

fn status_name(s: RunStatusName) -> &'static str {
    RunStatus::from(s).as_str()
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

fn millis(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// One line of JSON, cut to `max` characters.
fn compact(v: &Value, max: usize) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// An error value (`{"name","message",...}`) as `name: message`.
fn error_line(v: &Value) -> String {
    match (
        v.get("name").and_then(Value::as_str),
        v.get("message").and_then(Value::as_str),
    ) {
        (Some(name), Some(message)) => compact(&Value::String(format!("{name}: {message}")), 160),
        (None, Some(message)) => compact(&Value::String(message.to_owned()), 160),
        _ => compact(v, 160),
    }
}

/// The table printed by `ticketing runs list`.
pub fn render_list(runs: &[RunSummaryView]) -> String {
    if runs.is_empty() {
        return "no runs\n".to_owned();
    }
    let fn_width = runs
        .iter()
        .map(|r| r.function.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let ev_width = runs
        .iter()
        .map(|r| r.event_name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<36}  {:<fn_width$}  {:<9}  {:<ev_width$}  {:<24}  {:>8}\n",
        "ID", "FUNCTION", "STATUS", "EVENT", "CREATED", "DURATION"
    );
    for r in runs {
        let duration = r
            .ended_at
            .map(|end| millis((end - r.created_at).num_milliseconds()))
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "{:<36}  {:<fn_width$}  {:<9}  {:<ev_width$}  {:<24}  {duration:>8}",
            r.id,
            r.function,
            status_name(r.status),
            r.event_name,
            time(r.created_at),
        );
    }
    out
}

/// The report printed by `ticketing runs show`.
pub fn render_run(run: &RunView) -> String {
    let s = &run.summary;
    let mut out = String::new();
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<10}{value}");
    };
    field("run", s.id.clone());
    field("function", format!("{} ({})", s.function, s.function_id));
    field("status", status_name(s.status).to_owned());
    let event_id = run.event.get("id").and_then(Value::as_str).unwrap_or("-");
    field("event", format!("{} (id {event_id})", s.event_name));
    if let Some(data) = run.event.get("data") {
        field("data", compact(data, 200));
    }
    field("created", time(s.created_at));
    field(
        "started",
        run.started_at.map(time).unwrap_or_else(|| "-".into()),
    );
    field(
        "ended",
        match (s.ended_at, run.duration_ms) {
            (Some(end), Some(ms)) => format!("{} (took {})", time(end), millis(ms)),
            (Some(end), None) => time(end),
            _ => "-".into(),
        },
    );
    if let Some(of) = &run.rerun_of {
        field("rerun of", of.clone());
    }
    if let Some(parent) = &run.parent_run_id {
        field("parent", parent.clone());
    }
    if let Some(output) = &run.output {
        field("output", compact(output, 200));
    }
    if let Some(error) = &run.error {
        field("error", error_line(error));
    }
    out.push_str("\nsteps\n");
    render_steps(&mut out, &run.steps);
    out.push_str("\nhistory\n");
    render_history(&mut out, &run.history);
    out
}

/// The steps table of [`render_run`].
fn render_steps(out: &mut String, steps: &[StepView]) {
    if steps.is_empty() {
        out.push_str("  (none yet)\n");
    } else {
        let name_width = steps
            .iter()
            .map(|st| st.name.as_deref().unwrap_or(&st.id).chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "  {:<name_width$}  {:<12}  {:<9}  {:>8}  {:>8}  DETAIL",
            "NAME", "OP", "STATUS", "ATTEMPTS", "TIME"
        );
        for st in steps {
            let detail = match (&st.error, st.until) {
                (Some(e), Some(until)) => format!("{} (next {})", error_line(e), time(until)),
                (Some(e), None) => error_line(e),
                (None, Some(until)) => format!("until {}", time(until)),
                (None, None) => String::new(),
            };
            // Sleeps and waits are not attempts: no count, no call time.
            let (attempts, took) = if st.attempts == 0 {
                ("-".to_owned(), "-".to_owned())
            } else {
                (st.attempts.to_string(), millis(st.duration_ms))
            };
            let row = format!(
                "  {:<name_width$}  {:<12}  {:<9}  {attempts:>8}  {took:>8}  {detail}",
                st.name.as_deref().unwrap_or(&st.id),
                st.op,
                st.status,
            );
            out.push_str(row.trim_end());
            out.push('\n');
        }
    }
}

/// The attempt history of [`render_run`].
fn render_history(out: &mut String, history: &[HistoryView]) {
    for e in history {
        let what = e
            .name
            .as_deref()
            .unwrap_or(if e.step_id == DISCOVERY_STEP_ID {
                "(function)"
            } else {
                e.step_id.as_str()
            });
        let mut line = format!(
            "  {}  {what}  {} attempt {}  {}",
            time(e.at),
            e.op,
            e.attempt,
            e.outcome
        );
        if let Some(ms) = e.duration_ms {
            let _ = write!(line, "  {}", millis(ms));
        }
        if let Some(err) = &e.error {
            let _ = write!(line, "  {}", error_line(err));
        }
        if let Some(until) = e.until {
            let _ = write!(line, "  until {}", time(until));
        }
        out.push_str(&line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inngest::executor::state::HistoryEntry;
    use serde_json::json;

    fn entry(step: &str, name: &str, op: &str, attempt: u32, outcome: Outcome) -> HistoryEntry {
        HistoryEntry {
            at: Utc::now(),
            step_id: step.into(),
            name: Some(name.into()),
            op: op.into(),
            attempt,
            outcome,
            duration_ms: Some(40),
            error: (outcome == Outcome::Retrying)
                .then(|| json!({"name": "Error", "message": "smtp down"})),
            until: None,
        }
    }

    fn run() -> RunState {
        let mut run = RunState::new(
            "0192f0c0-0000-7000-8000-000000000001".into(),
            APP_ID,
            "ticketing-on-ticket-created",
            5,
            json!({"id": "ev-1", "name": "ticket/created", "data": {"ticket_id": "t"}}),
            Utc::now(),
        );
        run.history = vec![
            entry("h1", "triage", "StepRun", 0, Outcome::Completed),
            entry("h2", "notify", "StepRun", 0, Outcome::Retrying),
            entry("h2", "notify", "StepRun", 1, Outcome::Completed),
            entry("h3", "wait", "WaitForEvent", 0, Outcome::Waiting),
        ];
        run.steps
            .insert("h1".into(), json!({"data": {"status": "done"}}));
        run.steps.insert("h2".into(), json!({"data": "sent"}));
        run
    }

    #[test]
    fn steps_fold_attempts_timings_and_errors() {
        let view = RunView::from(&run());
        assert_eq!(view.summary.function, "on-ticket-created");
        let names: Vec<_> = view.steps.iter().map(|s| s.name.clone().unwrap()).collect();
        assert_eq!(names, ["triage", "notify", "wait"]);
        let notify = &view.steps[1];
        assert_eq!(notify.attempts, 2);
        assert_eq!(notify.duration_ms, 80);
        assert_eq!(notify.status, "completed");
        assert_eq!(notify.error.as_ref().unwrap()["message"], "smtp down");
        assert_eq!(notify.result, Some(json!({"data": "sent"})));
        assert_eq!(view.steps[2].status, "waiting");
        assert_eq!(view.steps[2].attempts, 0);
        assert_eq!(view.history.len(), 4);
        let text = render_run(&view);
        assert!(text.contains("on-ticket-created (ticketing-on-ticket-created)"));
        assert!(text.contains("Error: smtp down"), "{text}");
    }

    #[test]
    fn list_rendering_has_a_header_and_one_line_per_run() {
        let r = run();
        let rows = vec![RunSummaryView::from(&RunSummary::of(&r))];
        let text = render_list(&rows);
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().nth(1).unwrap().starts_with(&r.id));
        assert_eq!(render_list(&[]), "no runs\n");
    }
}
