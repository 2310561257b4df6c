//! Applying an SDK's answer to a call: the run's result, a function error, or ops, with one
//! handler per opcode. Each handler records the history line and queues the actions the
//! driver carries out; it says whether the run moved on, which decides the next discovery.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{
    Action, Ctx, HistoryEntry, Outcome, Pending, RunState, backoff, discover_if_settled,
    finish_completed, finish_failed,
};
use crate::duration;
use crate::expr::{Expression, Scope};
use crate::opcode::{CallError, Op, OpKind, error_value};
use inngest_axum::Opcode;
use inngest_axum::protocol::DISCOVERY_STEP_ID;

/// The call being answered.
pub(super) struct CallInfo {
    pub(super) step_id: String,
    pub(super) attempt: u32,
    pub(super) duration_ms: i64,
}

/// One answer being applied to a run.
pub(super) struct Answer<'a> {
    pub(super) run: &'a mut RunState,
    pub(super) call: CallInfo,
    pub(super) ctx: &'a Ctx,
    pub(super) actions: &'a mut Vec<Action>,
}

impl Answer<'_> {
    fn record(
        &mut self,
        op: Option<&Op>,
        op_name: &str,
        outcome: Outcome,
        error: Option<Value>,
        until: Option<DateTime<Utc>>,
    ) {
        self.run.history.push(HistoryEntry {
            at: self.ctx.now,
            step_id: op.map_or_else(|| self.call.step_id.clone(), |o| o.id.clone()),
            name: op.and_then(Op::label),
            op: op_name.to_string(),
            attempt: self.call.attempt,
            outcome,
            duration_ms: Some(self.call.duration_ms),
            error,
            until,
        });
    }

    /// When the call's own step runs again after a failed attempt.
    fn retry_time(&self, retry_at: Option<DateTime<Utc>>) -> DateTime<Utc> {
        retry_at
            .unwrap_or_else(|| self.ctx.now + backoff(self.call.attempt) + self.ctx.retry_jitter)
    }

    fn retries_left(&self) -> bool {
        self.call.attempt + 1 < self.run.max_attempts
    }

    fn call_again(&mut self, at: DateTime<Utc>) {
        self.actions.push(Action::Call {
            step_id: self.call.step_id.clone(),
            attempt: self.call.attempt + 1,
            at,
        });
    }

    /// The function returned: the run is complete.
    pub(super) fn complete(mut self, output: Value) {
        self.record(
            None,
            Opcode::RunComplete.name(),
            Outcome::Completed,
            None,
            None,
        );
        finish_completed(self.run, output, self.ctx, self.actions);
    }

    /// The function threw outside any step: retried as a whole until the attempts run out.
    pub(super) fn function_error(mut self, err: CallError) {
        if err.no_retry || !self.retries_left() {
            let error = err.error.clone();
            self.record(
                None,
                "FunctionError",
                Outcome::Failed,
                Some(err.error),
                None,
            );
            finish_failed(self.run, error, self.ctx, self.actions);
        } else {
            let at = self.retry_time(err.retry_at);
            self.record(
                None,
                "FunctionError",
                Outcome::Retrying,
                Some(err.error),
                Some(at),
            );
            self.call_again(at);
        }
    }

    /// The SDK reported steps: each op in order, then one discovery once nothing is pending.
    pub(super) fn ops(mut self, ops: Vec<Op>, no_retry: bool, retry_at: Option<DateTime<Utc>>) {
        let active = ops.iter().filter(|o| !o.kind.is(Opcode::None)).count();
        if active == 0 {
            if self.run.pending.is_empty() && self.call.step_id == DISCOVERY_STEP_ID {
                // Nothing pending and nothing reported: the run would never move again.
                self.function_error(CallError {
                    status: Some(206),
                    no_retry: false,
                    retry_at: None,
                    error: error_value("NoOpcodes", "the SDK reported no steps and no result"),
                });
            }
            return;
        }
        if active > 1 {
            self.run.force_step_plan = true;
        }
        let mut progressed = false;
        for op in ops {
            progressed |= match &op.kind {
                OpKind::Known(Opcode::StepRun | Opcode::Step) => self.step_done(&op),
                OpKind::Known(Opcode::StepPlanned) => self.step_planned(&op),
                OpKind::Known(Opcode::StepError | Opcode::StepFailed) => {
                    self.step_error(&op, no_retry, retry_at)
                }
                OpKind::Known(Opcode::Sleep) => self.sleep(&op),
                OpKind::Known(Opcode::WaitForEvent) => self.wait_for_event(&op),
                OpKind::Known(Opcode::InvokeFunction) => self.invoke(&op),
                OpKind::Known(Opcode::RunComplete) => {
                    self.record(
                        Some(&op),
                        Opcode::RunComplete.name(),
                        Outcome::Completed,
                        None,
                        None,
                    );
                    finish_completed(self.run, op.data.clone(), self.ctx, self.actions);
                    return;
                }
                OpKind::Known(Opcode::DiscoveryRequest) => true,
                OpKind::Known(Opcode::None) => false,
                unsupported => {
                    let message = format!(
                        "opcode {} is not supported by the embedded executor",
                        unsupported.name()
                    );
                    self.step_failed(&op, error_value("UnsupportedOpcode", message))
                }
            };
        }
        if progressed {
            discover_if_settled(self.run, self.ctx, self.actions);
        }
    }

    /// The step ends with `error` as its result; whether that is news.
    fn step_failed(&mut self, op: &Op, error: Value) -> bool {
        self.record(
            Some(op),
            op.kind.name(),
            Outcome::Failed,
            Some(error.clone()),
            None,
        );
        self.run.memoize(&op.id, json!({"error": error}))
    }

    fn is_known(&self, op: &Op) -> bool {
        self.run.steps.contains_key(&op.id) || self.run.pending.contains_key(&op.id)
    }

    fn step_done(&mut self, op: &Op) -> bool {
        let value = if op.kind.is(Opcode::StepRun) {
            json!({"data": op.data})
        } else {
            op.data.clone()
        };
        self.record(Some(op), op.kind.name(), Outcome::Completed, None, None);
        self.run.memoize(&op.id, value);
        true
    }

    fn step_planned(&mut self, op: &Op) -> bool {
        if !self.is_known(op) {
            self.run.pending.insert(op.id.clone(), Pending::Planned);
            self.record(
                Some(op),
                Opcode::StepPlanned.name(),
                Outcome::Planned,
                None,
                None,
            );
            self.actions.push(Action::Call {
                step_id: op.id.clone(),
                attempt: 0,
                at: self.ctx.now,
            });
        }
        false
    }

    fn step_error(&mut self, op: &Op, no_retry: bool, retry_at: Option<DateTime<Utc>>) -> bool {
        let error = op
            .error
            .clone()
            .unwrap_or_else(|| error_value("Error", "step failed without an error"));
        let final_error = no_retry
            || error.get("noRetry").and_then(Value::as_bool) == Some(true)
            || op.kind.is(Opcode::StepFailed);
        if final_error || !self.retries_left() {
            self.step_failed(op, error);
            return true;
        }
        let at = self.retry_time(retry_at);
        self.record(
            Some(op),
            Opcode::StepError.name(),
            Outcome::Retrying,
            Some(error),
            Some(at),
        );
        self.call_again(at);
        false
    }

    fn sleep(&mut self, op: &Op) -> bool {
        let spec = op.opt_str("duration").or(op.name.as_deref()).unwrap_or("");
        let Some(wake) = duration::sleep_until(spec, self.ctx.now) else {
            let message = format!("cannot read sleep duration `{spec}`");
            return self.step_failed(op, error_value("InvalidSleep", message));
        };
        if !self.run.steps.contains_key(&op.id)
            && self
                .run
                .pending
                .insert(op.id.clone(), Pending::Sleep)
                .is_none()
        {
            self.record(
                Some(op),
                Opcode::Sleep.name(),
                Outcome::Sleeping,
                None,
                Some(wake),
            );
            self.actions.push(Action::Resume {
                step_id: op.id.clone(),
                value: Value::Null,
                at: wake,
            });
        }
        false
    }

    fn wait_for_event(&mut self, op: &Op) -> bool {
        if self.is_known(op) {
            return false;
        }
        let event = op.opt_str("event").or(op.name.as_deref()).unwrap_or("");
        if event.is_empty() {
            let error = error_value("InvalidWait", "waitForEvent without an event name");
            return self.step_failed(op, error);
        }
        let condition = op.opt_str("if").filter(|s| !s.trim().is_empty());
        if let Some(Err(e)) = condition.map(|c| Expression::parse(c, Scope::EventAndAsync)) {
            let message = format!("unsupported `if` expression: {e}");
            return self.step_failed(op, error_value("InvalidExpression", message));
        }
        let timeout = op.opt_str("timeout").unwrap_or("");
        let expires = if timeout.trim().is_empty() {
            // Inngest: an empty timeout expires at once.
            Some(self.ctx.now)
        } else {
            duration::sleep_until(timeout, self.ctx.now)
        };
        let Some(expires_at) = expires else {
            let message = format!("cannot read timeout `{timeout}`");
            return self.step_failed(op, error_value("InvalidWait", message));
        };
        self.run.pending.insert(op.id.clone(), Pending::Wait);
        let name = Opcode::WaitForEvent.name();
        self.record(Some(op), name, Outcome::Waiting, None, Some(expires_at));
        self.actions.push(Action::WaitForEvent {
            step_id: op.id.clone(),
            event: event.to_string(),
            condition: condition.map(str::to_string),
            expires_at,
        });
        false
    }

    fn invoke(&mut self, op: &Op) -> bool {
        if self.is_known(op) {
            return false;
        }
        let Some(function_id) = op.opt_str("function_id").map(str::to_string) else {
            let error = error_value("InvalidInvoke", "invoke without function_id");
            return self.step_failed(op, error);
        };
        let timeout = op.opt_str("timeout").unwrap_or("");
        let expires_at = duration::sleep_until(timeout, self.ctx.now)
            .unwrap_or(self.ctx.now + duration::MAX_DURATION);
        self.run.pending.insert(op.id.clone(), Pending::Invoke);
        let name = Opcode::InvokeFunction.name();
        self.record(Some(op), name, Outcome::Invoking, None, Some(expires_at));
        self.actions.push(Action::Invoke {
            step_id: op.id.clone(),
            function_id,
            payload: op.opts.get("payload").cloned().unwrap_or_else(|| json!({})),
            expires_at,
        });
        false
    }
}
