//! Runs one function for one call request and decides what to answer (SDK_SPEC §5).
//!
//! Transport-agnostic: the serve handler turns a [`CallOutcome`] into an HTTP response.

use futures::FutureExt;
use serde_json::{Value, json};

use super::client::EventClient;
use super::error::FnError;
use super::function::{Ctx, HandlerFn};
use super::protocol::{CallRequest, DISCOVERY_STEP_ID, ErrorBody, OutgoingOp};
use super::step::{FoundStep, RanStep, Step, StepRetry};

/// How a failed function should be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retriability {
    /// Retry while attempts remain.
    Retry,
    /// Do not retry (`X-Inngest-No-Retry: true`).
    NoRetry,
    /// Retry no earlier than this `Retry-After` value.
    RetryAfter(String),
}

/// The result of one call, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// `200`: the function returned.
    Complete(Value),
    /// `206`: new steps were found (run-type steps as `StepPlanned`).
    StepsFound(Vec<OutgoingOp>),
    /// `206`: one step ran in this request; `retry` is `None` when it succeeded.
    StepRan {
        /// The step's opcode with its result or error.
        op: Box<OutgoingOp>,
        /// How to retry the step when it failed.
        retry: Option<Retriability>,
    },
    /// `500` or `400`: the function failed.
    Failed {
        /// The error the function returned.
        error: ErrorBody,
        /// How to retry the function.
        retriability: Retriability,
    },
    /// `500`: the targeted step was not reached (the code changed under a running run).
    StepNotFound {
        /// The hashed step id the request targeted.
        requested: String,
        /// The error body sent back.
        body: Value,
    },
}

/// Most steps listed in a step-not-found error (JS does the same).
const MAX_LISTED_STEPS: usize = 25;

/// Everything needed to run a handler once.
#[derive(Clone)]
pub(crate) struct Call<'a> {
    pub app_id: &'a str,
    pub function_id: &'a str,
    pub handler: &'a HandlerFn,
    pub request: &'a CallRequest,
    pub step_id: Option<&'a str>,
    pub events: Option<EventClient>,
}

impl Call<'_> {
    fn ctx(&self) -> Ctx {
        let req = self.request;
        let events = if req.events.is_empty() {
            vec![req.event.clone()]
        } else {
            req.events.clone()
        };
        Ctx {
            event: req.event.clone(),
            events,
            run_id: req.ctx.run_id.clone(),
            attempt: req.ctx.attempt,
            max_attempts: req.ctx.max_attempts,
            function_id: self.function_id.to_owned(),
        }
    }

    /// Runs the handler once. With `hold`, a discovery runs its one new step in the same pass
    /// (see [`Step::decide_held`]): the decision is made whenever the handler can go no further.
    async fn pass(
        &self,
        target: Option<String>,
        hold: bool,
    ) -> (Result<Value, FnError>, Vec<FoundStep>, Option<RanStep>) {
        let step = Step::new(
            self.app_id,
            self.request.steps.clone(),
            target,
            self.request.ctx.attempt,
            self.request.ctx.max_attempts,
            self.events.clone(),
        );
        if hold {
            step.hold_new_steps();
        }
        let fut = (self.handler)(self.ctx(), step.clone());
        let mut fut = std::pin::pin!(std::panic::AssertUnwindSafe(fut).catch_unwind());
        let driven = std::future::poll_fn(|cx| {
            let poll = fut.as_mut().poll(cx);
            if poll.is_pending() && hold {
                step.decide_held();
            }
            poll
        });
        let result = match driven.await {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "handler panicked".to_owned());
                Err(FnError::retriable(format!("handler panicked: {message}")))
            }
        };
        let (found, ran) = step.take_results();
        (result, found, ran)
    }

    fn is_final_attempt(&self) -> bool {
        let ctx = &self.request.ctx;
        ctx.max_attempts.is_some_and(|max| ctx.attempt + 1 >= max)
    }

    fn failure(&self, err: &FnError) -> CallOutcome {
        let retriability = match err {
            FnError::NonRetriable { .. } | FnError::Step(_) => Retriability::NoRetry,
            _ if self.is_final_attempt() => Retriability::NoRetry,
            FnError::RetryAfter { after, .. } => Retriability::RetryAfter(after.header_value()),
            FnError::Retriable { .. } | FnError::Interrupt(_) => Retriability::Retry,
        };
        CallOutcome::Failed {
            error: err.to_body(),
            retriability,
        }
    }

    /// Runs the call: discovery (`stepId=step`) or a targeted step.
    pub async fn run(&self) -> CallOutcome {
        let target = self
            .step_id
            .filter(|id| !id.is_empty() && *id != DISCOVERY_STEP_ID)
            .map(str::to_owned);
        if let Some(target) = target {
            let (result, found, ran) = self.pass(Some(target.clone()), false).await;
            return self.targeted_outcome(&target, result, found, ran);
        }

        let immediate_allowed = !self.request.ctx.disable_immediate_execution;
        let (result, found, ran) = self.pass(None, immediate_allowed).await;
        if let Some(ran) = ran {
            return self.targeted_outcome(&ran.op.id.clone(), result, found, Some(ran));
        }
        let interrupted = matches!(result, Err(FnError::Interrupt(_))) && !found.is_empty();
        let stopped_with_steps = interrupted || (result.is_ok() && !found.is_empty());
        if !stopped_with_steps {
            return match result {
                Ok(value) => CallOutcome::Complete(value),
                Err(err) => self.failure(&err),
            };
        }
        let immediate = immediate_allowed && found.len() == 1 && found[0].runnable;
        if immediate {
            // The single new step did not run in the pass above (the handler returned without
            // awaiting it): replay once more with it as the target, as the protocol expects.
            let target = found[0].op.id.clone();
            let (result, found, ran) = self.pass(Some(target.clone()), false).await;
            return self.targeted_outcome(&target, result, found, ran);
        }
        CallOutcome::StepsFound(found.into_iter().map(|f| f.op).collect())
    }

    fn targeted_outcome(
        &self,
        target: &str,
        result: Result<Value, FnError>,
        found: Vec<FoundStep>,
        ran: Option<RanStep>,
    ) -> CallOutcome {
        if let Some(ran) = ran {
            let retry = match ran.retry {
                StepRetry::Succeeded => None,
                StepRetry::Retry => Some(Retriability::Retry),
                StepRetry::NoRetry => Some(Retriability::NoRetry),
                StepRetry::RetryAfter(v) => Some(Retriability::RetryAfter(v)),
            };
            return CallOutcome::StepRan {
                op: Box::new(ran.op),
                retry,
            };
        }
        if let Err(err) = &result
            && !err.is_interrupt()
        {
            return self.failure(err);
        }
        step_not_found(target, &found)
    }
}

fn step_not_found(target: &str, found: &[FoundStep]) -> CallOutcome {
    let mut listed: Vec<Value> = found
        .iter()
        .map(|f| {
            json!({
                "id": f.op.id,
                "name": f.op.name,
                "displayName": f.op.display_name,
            })
        })
        .collect();
    listed.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let total = listed.len();
    listed.truncate(MAX_LISTED_STEPS);
    let mut error = format!("Could not find step \"{target}\" to run; timed out.");
    if !listed.is_empty() {
        let summary: Vec<String> = listed
            .iter()
            .map(|s| {
                let id = s["id"].as_str().unwrap_or_default();
                let name = s["displayName"].as_str().unwrap_or(id);
                format!("{name} ({id})")
            })
            .collect();
        error = format!("{error} Found new steps: \n{}.", summary.join("\n"));
    }
    if total > listed.len() {
        error = format!("{error} (showing {} of {total})", listed.len());
    }
    CallOutcome::StepNotFound {
        requested: target.to_owned(),
        body: json!({
            "error": error,
            "requestedStep": target,
            "foundSteps": listed,
            "totalFoundSteps": total,
        }),
    }
}
