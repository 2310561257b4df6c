//! `POST`: a call to one function, and its outcome as a reply.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::ServeHandler;
use super::request::{Request, Validation};
use super::response::Reply;
use crate::execution::{Call, CallOutcome, Retriability};
use crate::function::HandlerFn;
use crate::headers;
use crate::protocol::{CallRequest, Event};

impl ServeHandler {
    pub(super) async fn post(&self, req: &Request, validation: &Validation) -> Reply {
        if req.body.is_empty() {
            tracing::error!("call request without a body");
            return Reply::unauthorized();
        }
        if let Err(e) = validation {
            tracing::warn!(error = %e, "rejected call request");
            return Reply::unauthorized();
        }
        if let Some(probe) = req.query("probe") {
            if probe == "trust" {
                return Reply {
                    status: StatusCode::OK,
                    headers: Vec::new(),
                    body: Vec::new(),
                };
            }
            return Reply::json(
                StatusCode::BAD_REQUEST,
                &json!({ "name": "Error", "message": format!("Unknown probe \"{probe}\"") }),
            );
        }
        let Some(fn_id) = req.query("fnId") else {
            return Reply::internal("No function ID found in async request");
        };
        let Some((function_id, handler)) = self.lookup(&fn_id) else {
            return Reply::internal(format!(
                "Function \"{fn_id}\" was not found in this app; is the app synced correctly?"
            ));
        };
        let step_id = req
            .query("stepId")
            .or_else(|| req.header(headers::STEP_ID).map(str::to_owned));
        let mut request: CallRequest = match serde_json::from_slice(&req.body) {
            Ok(r) => r,
            Err(e) => return Reply::internal(format!("Failed to parse the call request: {e}")),
        };
        if (request.ctx.use_api || request.use_api)
            && let Err(message) = self.load_trimmed_payload(&mut request).await
        {
            return Reply::internal(message);
        }
        let call = Call {
            app_id: &self.inner.app_id,
            function_id: &function_id,
            handler: &handler,
            request: &request,
            step_id: step_id.as_deref(),
            events: Some(self.inner.events.clone()),
        };
        outcome_reply(call.run().await)
    }

    /// Finds a handler by composite id, or by bare id (older servers).
    fn lookup(&self, fn_id: &str) -> Option<(String, HandlerFn)> {
        if let Some(h) = self.inner.handlers.get(fn_id) {
            return Some((fn_id.to_owned(), h.clone()));
        }
        let composite = format!("{}-{fn_id}", self.inner.app_id);
        self.inner
            .handlers
            .get(&composite)
            .map(|h| (composite, h.clone()))
    }

    async fn load_trimmed_payload(&self, request: &mut CallRequest) -> Result<(), String> {
        let (batch, actions) = self.inner.api.run_payload(&request.ctx.run_id).await?;
        let events: Vec<Event> =
            serde_json::from_value(batch).map_err(|e| format!("invalid run events: {e}"))?;
        if let Some(first) = events.first() {
            request.event = first.clone();
        }
        request.events = events;
        request.steps = match actions {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => return Err(format!("invalid run steps: {other}")),
        };
        Ok(())
    }
}

fn no_retry(r: &Retriability) -> &'static str {
    match r {
        Retriability::NoRetry => "true",
        Retriability::Retry | Retriability::RetryAfter(_) => "false",
    }
}

fn outcome_reply(outcome: CallOutcome) -> Reply {
    match outcome {
        CallOutcome::Complete(value) => Reply::json(StatusCode::OK, &value),
        CallOutcome::StepsFound(ops) => Reply::json(StatusCode::PARTIAL_CONTENT, &json!(ops)),
        CallOutcome::StepRan { op, retry } => {
            let mut reply = Reply::json(StatusCode::PARTIAL_CONTENT, &json!([op]));
            if let Some(r) = retry {
                reply = reply.header(headers::NO_RETRY, no_retry(&r));
                if let Retriability::RetryAfter(after) = r {
                    reply = reply.header(headers::RETRY_AFTER, after);
                }
            }
            reply
        }
        CallOutcome::Failed {
            error,
            retriability,
        } => {
            let status = match retriability {
                Retriability::NoRetry => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let mut reply = Reply::json(status, &json!(error))
                .header(headers::NO_RETRY, no_retry(&retriability));
            if let Retriability::RetryAfter(after) = retriability {
                reply = reply.header(headers::RETRY_AFTER, after);
            }
            reply
        }
        CallOutcome::StepNotFound { body, .. } => {
            Reply::json(StatusCode::INTERNAL_SERVER_ERROR, &body).header(headers::NO_RETRY, "false")
        }
    }
}
