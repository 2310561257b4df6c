//! Errors a function or a step returns, and how each is answered.
//!
//! [`FnError`] deliberately does not implement `std::error::Error`, so that any error type can be
//! turned into a (retriable) `FnError` with `?`, as with `anyhow::Error`.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::protocol::ErrorBody;

/// Control flow, not a failure: the step tool found a step that has not run yet, so the handler
/// must stop here. Propagate it with `?`; the SDK reports the step to Inngest and the run resumes
/// in a later request once the step's result is memoized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupt(());

impl Interrupt {
    pub(crate) fn new() -> Self {
        Self(())
    }
}

/// A step that failed for good (its retries are exhausted, or it was non-retriable), raised back
/// into the handler on replay. Returned as-is from the handler, it fails the run without retries.
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    /// The id the step was given in code.
    pub step_id: String,
    /// The error as stored by Inngest.
    pub error: ErrorBody,
}

impl StepError {
    /// The error's name, e.g. `Error` or `NonRetriableError`.
    pub fn name(&self) -> &str {
        &self.error.name
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.error.message
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {:?} failed: {}", self.step_id, self.error.message)
    }
}

/// When to retry after a [`FnError::RetryAfter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// After this long.
    In(Duration),
    /// At this instant.
    At(DateTime<Utc>),
}

impl RetryAfter {
    /// The `Retry-After` header value: whole seconds (rounded up) or an ISO-8601 instant, as JS.
    pub fn header_value(&self) -> String {
        match self {
            RetryAfter::In(d) => {
                let millis = d.as_millis();
                millis.div_ceil(1000).to_string()
            }
            RetryAfter::At(at) => at.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }
}

/// What a handler or a step closure returns on failure.
#[derive(Debug, Clone, PartialEq)]
pub enum FnError {
    /// See [`Interrupt`]; never construct it yourself, just propagate it.
    Interrupt(Interrupt),
    /// A memoized step failure raised back into the handler (non-retriable when returned).
    Step(Box<StepError>),
    /// An ordinary error: retried until the attempts run out.
    Retriable {
        /// The error's name (`Error` unless given).
        name: String,
        /// What went wrong.
        message: String,
    },
    /// Never retried (`NonRetriableError`).
    NonRetriable {
        /// What went wrong.
        message: String,
    },
    /// Retried no earlier than the given time (`RetryAfterError`).
    RetryAfter {
        /// What went wrong.
        message: String,
        /// When the next attempt may start.
        after: RetryAfter,
    },
}

impl FnError {
    /// A retriable error named `Error`.
    pub fn retriable(message: impl Into<String>) -> Self {
        Self::Retriable {
            name: "Error".to_owned(),
            message: message.into(),
        }
    }

    /// A retriable error with a custom `name` (shown in the Inngest UI).
    pub fn named(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Retriable {
            name: name.into(),
            message: message.into(),
        }
    }

    /// An error that fails the run (or step) at once, without further attempts.
    pub fn non_retriable(message: impl Into<String>) -> Self {
        Self::NonRetriable {
            message: message.into(),
        }
    }

    /// A retriable error whose next attempt waits at least `delay`.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self::RetryAfter {
            message: message.into(),
            after: RetryAfter::In(delay),
        }
    }

    /// A retriable error whose next attempt waits until `at`.
    pub fn retry_at(message: impl Into<String>, at: DateTime<Utc>) -> Self {
        Self::RetryAfter {
            message: message.into(),
            after: RetryAfter::At(at),
        }
    }

    /// Whether this is the control-flow [`Interrupt`] rather than a failure.
    pub fn is_interrupt(&self) -> bool {
        matches!(self, FnError::Interrupt(_))
    }

    /// The serialized form sent to Inngest.
    pub fn to_body(&self) -> ErrorBody {
        match self {
            FnError::Interrupt(_) => ErrorBody::new(
                "Error",
                "a step was interrupted inside another step; steps cannot be nested",
            ),
            FnError::Step(e) => ErrorBody::new(e.error.name.clone(), e.error.message.clone()),
            FnError::Retriable { name, message } => ErrorBody::new(name.clone(), message.clone()),
            FnError::NonRetriable { message } => {
                ErrorBody::new("NonRetriableError", message.clone())
            }
            FnError::RetryAfter { message, .. } => {
                ErrorBody::new("RetryAfterError", message.clone())
            }
        }
    }
}

impl fmt::Display for FnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FnError::Interrupt(_) => f.write_str("interrupted to report a step"),
            FnError::Step(e) => e.fmt(f),
            FnError::Retriable { name, message } => write!(f, "{name}: {message}"),
            FnError::NonRetriable { message } => write!(f, "NonRetriableError: {message}"),
            FnError::RetryAfter { message, .. } => write!(f, "RetryAfterError: {message}"),
        }
    }
}

impl From<Interrupt> for FnError {
    fn from(i: Interrupt) -> Self {
        FnError::Interrupt(i)
    }
}

impl From<StepError> for FnError {
    fn from(e: StepError) -> Self {
        FnError::Step(Box::new(e))
    }
}

impl<E> From<E> for FnError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        FnError::retriable(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_header_values() {
        assert_eq!(RetryAfter::In(Duration::from_secs(30)).header_value(), "30");
        assert_eq!(
            RetryAfter::In(Duration::from_millis(1500)).header_value(),
            "2"
        );
        let at = Utc
            .with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
            .single()
            .expect("date");
        assert_eq!(
            RetryAfter::At(at).header_value(),
            "2030-01-02T03:04:05.000Z"
        );
    }

    #[test]
    fn any_std_error_becomes_retriable_with_its_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e: FnError = Outer(std::io::Error::other("inner")).into();
        assert_eq!(e, FnError::retriable("outer: inner"));
        assert_eq!(e.to_body().name, "Error");
        assert_eq!(
            FnError::non_retriable("x").to_body().name,
            "NonRetriableError"
        );
        assert_eq!(
            FnError::retry_after("x", Duration::from_secs(1))
                .to_body()
                .name,
            "RetryAfterError"
        );
    }
}
