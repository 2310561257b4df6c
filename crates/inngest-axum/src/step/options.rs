//! Options of the steps that take more than an id: waiting for an event and invoking a
//! function.

use std::time::Duration;

use serde_json::Value;

/// Options of [`Step::wait_for_event`](super::Step::wait_for_event).
#[derive(Debug, Clone, PartialEq)]
pub struct WaitForEvent {
    /// Name of the event to wait for.
    pub event: String,
    /// How long to wait; the step resolves to `None` afterwards.
    pub timeout: Duration,
    /// CEL expression over `event` (the run's trigger) and `async` (the candidate).
    pub if_exp: Option<String>,
}

impl WaitForEvent {
    /// Waits up to `timeout` for the next event named `event`.
    pub fn new(event: impl Into<String>, timeout: Duration) -> Self {
        Self {
            event: event.into(),
            timeout,
            if_exp: None,
        }
    }

    /// Sets the `if` expression, e.g. `async.data.ticket_id == event.data.ticket_id`.
    pub fn if_exp(mut self, expression: impl Into<String>) -> Self {
        self.if_exp = Some(expression.into());
        self
    }

    /// Matches a field between the trigger and the awaited event (JS `match`).
    pub fn matching(self, field: &str) -> Self {
        self.if_exp(format!("event.{field} == async.{field}"))
    }
}

/// Options of [`Step::invoke`](super::Step::invoke).
#[derive(Debug, Clone, PartialEq)]
pub struct Invoke {
    /// Id of the function as declared (without the app prefix).
    pub function_id: String,
    /// App that serves it; this app when `None`.
    pub app_id: Option<String>,
    /// Becomes `event.data` of the invoked run.
    pub data: Value,
    /// Give up waiting after this long (the server's default is one year).
    pub timeout: Option<Duration>,
}

impl Invoke {
    /// Invokes the function `function_id` of this app with `data` as its event data.
    pub fn new(function_id: impl Into<String>, data: Value) -> Self {
        Self {
            function_id: function_id.into(),
            app_id: None,
            data,
            timeout: None,
        }
    }

    /// Stops waiting for the invoked run after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Invokes a function of another app.
    pub fn app(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }
}
