//! From the actions of one transition to the store writes that carry them out, as one
//! [`Commit`]: queue items for calls, timers and publishes, pauses for waits, child runs for
//! invokes, and the clean-up of a finished run.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::opcode::error_value;
use crate::service::{Executor, invoke_event, parent_of, timeout_key};
use crate::state::{Action, ResumeReason, RunState};
use crate::store::{Commit, ItemKind, Lease, Pause, PauseKind, QueueItem};

/// A queue item that resumes `step_id` of `run_id` at `at`.
fn resume_item(
    key: String,
    run_id: &str,
    step_id: &str,
    value: Value,
    reason: ResumeReason,
    pause_id: Option<String>,
    at: DateTime<Utc>,
) -> QueueItem {
    let kind = ItemKind::Resume {
        step_id: step_id.to_string(),
        value,
        reason,
        pause_id,
    };
    QueueItem::new(key, Some(run_id.to_string()), kind, at)
}

impl Executor {
    /// Turns the actions of one transition into the store writes that carry them out.
    pub(crate) fn plan(
        &self,
        done: Option<Lease>,
        new: &Arc<RunState>,
        changed: bool,
        actions: &[Action],
        now: DateTime<Utc>,
    ) -> Commit {
        let mut c = Commit {
            done,
            run: changed.then(|| Arc::clone(new)),
            ..Commit::default()
        };
        let new: &RunState = new;
        let run_id = new.id.as_str();
        for action in actions {
            match action {
                Action::Call {
                    step_id,
                    attempt,
                    at,
                } => c.enqueue.push(self.plan_call(new, step_id, *attempt, *at)),
                Action::Resume { step_id, value, at } => c.enqueue.push(resume_item(
                    format!("timer:{run_id}:{step_id}"),
                    run_id,
                    step_id,
                    value.clone(),
                    ResumeReason::SleepDone,
                    None,
                    *at,
                )),
                Action::WaitForEvent {
                    step_id,
                    event,
                    condition,
                    expires_at,
                } => plan_wait(&mut c, new, step_id, event, condition, *expires_at),
                Action::Invoke {
                    step_id,
                    function_id,
                    payload,
                    expires_at,
                } => self.plan_invoke(&mut c, new, step_id, function_id, payload, *expires_at, now),
                Action::SendEvents(events) => {
                    let first = events
                        .first()
                        .and_then(|e| e.get("id"))
                        .and_then(Value::as_str)
                        .unwrap_or(run_id);
                    let kind = ItemKind::Publish {
                        events: events.clone(),
                    };
                    let key = format!("publish:{first}");
                    c.enqueue
                        .push(QueueItem::new(key, Some(run_id.to_string()), kind, now));
                }
                Action::ResumeParent {
                    run_id: parent,
                    step_id,
                    value,
                } => {
                    c.enqueue.push(resume_item(
                        format!("invoke:{parent}:{step_id}"),
                        parent,
                        step_id,
                        value.clone(),
                        ResumeReason::InvokeFinished,
                        None,
                        now,
                    ));
                    c.remove_items.push(timeout_key(parent, step_id));
                }
                Action::Finished(_) => c.remove_run_work.push(run_id.to_string()),
            }
        }
        c
    }

    /// The call item, with the function's concurrency slots while it is still registered.
    fn plan_call(
        &self,
        run: &RunState,
        step_id: &str,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> QueueItem {
        if let Some(def) = self.function(&run.function_id) {
            return self.call_item(&def, run, step_id, attempt, at);
        }
        let kind = ItemKind::Call {
            step_id: step_id.to_string(),
            attempt,
        };
        QueueItem::new(
            format!("call:{}:{step_id}", run.id),
            Some(run.id.clone()),
            kind,
            at,
        )
    }

    /// A child run with its timeout, or at once an error result when the target is unknown.
    #[allow(clippy::too_many_arguments)]
    fn plan_invoke(
        &self,
        c: &mut Commit,
        parent: &RunState,
        step_id: &str,
        function_id: &str,
        payload: &Value,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let run_id = parent.id.as_str();
        let Some(target) = self.function(function_id) else {
            let message = format!("function {function_id} is not registered");
            c.enqueue.push(resume_item(
                format!("invoke:{run_id}:{step_id}"),
                run_id,
                step_id,
                json!({"error": error_value("Error", message)}),
                ResumeReason::InvokeFinished,
                None,
                now,
            ));
            return;
        };
        let event = invoke_event(parent, step_id, function_id, payload, expires_at, now);
        let (mut child, item, pauses) = self.new_run(&target, event.clone(), now);
        child.parent = Some(parent_of(run_id, step_id));
        c.new_runs.push(child);
        c.enqueue.push(item);
        c.pauses.extend(pauses);
        c.events.push(event);
        c.enqueue.push(resume_item(
            timeout_key(run_id, step_id),
            run_id,
            step_id,
            json!({"error": {
                "name": "InngestInvokeTimeoutError",
                "message": "Timed out waiting for invoked function to complete",
            }}),
            ResumeReason::TimedOut,
            None,
            expires_at,
        ));
    }
}

/// A pause for the awaited event, and the timer that resumes the step with `null` at expiry.
fn plan_wait(
    c: &mut Commit,
    run: &RunState,
    step_id: &str,
    event: &str,
    condition: &Option<String>,
    expires_at: DateTime<Utc>,
) {
    let pause_id = uuid::Uuid::now_v7().to_string();
    c.pauses.push(Pause {
        id: pause_id.clone(),
        run_id: run.id.clone(),
        kind: PauseKind::Wait {
            step_id: step_id.to_string(),
        },
        event: event.to_string(),
        condition: condition.clone(),
        trigger_event: run.event.clone(),
        expires_at,
    });
    c.enqueue.push(resume_item(
        timeout_key(&run.id, step_id),
        &run.id,
        step_id,
        Value::Null,
        ResumeReason::TimedOut,
        Some(pause_id),
        expires_at,
    ));
}
