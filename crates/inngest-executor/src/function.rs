//! The executor's view of a synced function, read leniently from one entry of the register
//! body's `functions` array (reference §2.2). Only what the executor acts on is kept; the rest
//! of the JSON is ignored like the real server ignores unknown keys.

use serde_json::Value;
use thiserror::Error;

use super::cron::{CronError, Schedule};
use super::expr::{ExprError, Expression, Scope};
use super::transport::CallTarget;

/// Server default when a function does not say: 4 retries, so 5 attempts.
pub const DEFAULT_RETRIES: u32 = 4;
pub const MAX_RETRIES: u32 = 20;

#[derive(Debug, Error)]
pub enum RegisterError {
    #[error("function #{index} has no `id`")]
    MissingId { index: usize },
    #[error("function `{function}` is registered twice")]
    DuplicateId { function: String },
    #[error("function `{function}` has no triggers")]
    NoTriggers { function: String },
    #[error("function `{function}`: trigger #{index} has neither `event` nor `cron`")]
    BadTrigger { function: String, index: usize },
    #[error("function `{function}`: invalid expression in {place} `{source_text}`: {error}")]
    Expression {
        function: String,
        place: &'static str,
        source_text: String,
        error: ExprError,
    },
    #[error("function `{function}`: invalid cron `{schedule}`: {error}")]
    Cron {
        function: String,
        schedule: String,
        error: CronError,
    },
    #[error("function `{function}`: {detail}")]
    Invalid { function: String, detail: String },
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Event {
        /// Exact name, or a prefix when the name ends in `*` (`app/*`).
        name: String,
        expression: Option<Expression>,
    },
    Cron {
        source: String,
        schedule: Schedule,
    },
}

impl Trigger {
    pub fn matches(&self, event_name: &str, event: &Value) -> bool {
        match self {
            Trigger::Event { name, expression } => {
                let name_ok = match name.strip_suffix('*') {
                    Some(prefix) => event_name.starts_with(prefix),
                    None => name == event_name,
                };
                name_ok && expression.as_ref().is_none_or(|e| e.matches(event, None))
            }
            Trigger::Cron { .. } => false,
        }
    }
}

/// Where a concurrency limit is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyScope {
    Function,
    /// `env` and `account` scopes: shared by every function using the same key.
    Shared,
}

#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    pub limit: u32,
    pub key: Option<Expression>,
    pub scope: ConcurrencyScope,
}

#[derive(Debug, Clone)]
pub struct CancelOn {
    pub event: String,
    pub condition: Option<Expression>,
    pub timeout: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub app_id: String,
    /// Composite id `<app>-<fn>`, the `fnId` of call requests.
    pub id: String,
    pub name: String,
    pub triggers: Vec<Trigger>,
    /// The step runtime URL the calls go to (`fnId` and `stepId` are set per call).
    pub url: String,
    pub max_attempts: u32,
    pub concurrency: Vec<ConcurrencyLimit>,
    pub cancel: Vec<CancelOn>,
    /// What the calls of this function share, from `id` and `url`.
    pub call: CallTarget,
}

impl FunctionDef {
    /// The concurrency slots a call of this function takes for a run with this trigger event.
    pub fn concurrency_slots(&self, event: &Value) -> Vec<(String, u32)> {
        self.concurrency
            .iter()
            .map(|c| {
                let key = c
                    .key
                    .as_ref()
                    .map(|k| match k.eval(event, None) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                let slot = match c.scope {
                    ConcurrencyScope::Function => format!("fn:{}:{key}", self.id),
                    ConcurrencyScope::Shared => format!("shared:{key}"),
                };
                (slot, c.limit)
            })
            .collect()
    }

    pub fn cron_schedules(&self) -> impl Iterator<Item = (&str, &Schedule)> {
        self.triggers.iter().filter_map(|t| match t {
            Trigger::Cron { source, schedule } => Some((source.as_str(), schedule)),
            Trigger::Event { .. } => None,
        })
    }
}

/// Flow-control settings the embedded executor does not enforce; registering them only warns.
const UNENFORCED: [&str; 7] = [
    "rateLimit",
    "throttle",
    "debounce",
    "batchEvents",
    "idempotency",
    "priority",
    "singleton",
];

pub fn parse_function(
    app_id: &str,
    index: usize,
    raw: &Value,
) -> Result<FunctionDef, RegisterError> {
    let id = raw
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(RegisterError::MissingId { index })?
        .to_string();
    let name = raw
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&id)
        .to_string();
    let reader = Reader { id: &id };
    let triggers = reader.triggers(raw)?;
    let step = raw.get("steps").and_then(|s| {
        s.get("step")
            .or_else(|| s.as_object().and_then(|m| m.values().next()))
    });
    let url = step
        .and_then(|s| s.pointer("/runtime/url"))
        .and_then(Value::as_str)
        .unwrap_or("/api/inngest")
        .to_string();
    let retries = step
        .and_then(|s| s.pointer("/retries/attempts"))
        .or_else(|| raw.get("retries"))
        .map(|v| {
            v.as_u64()
                .map(|n| n.min(u64::from(MAX_RETRIES)) as u32)
                .ok_or_else(|| reader.invalid(format!("retries must be a number, got {v}")))
        })
        .transpose()?
        .unwrap_or(DEFAULT_RETRIES);
    let concurrency = reader.concurrency(raw)?;
    let cancel = reader.cancel(raw)?;
    for field in UNENFORCED {
        if raw.get(field).is_some_and(|v| !v.is_null()) {
            tracing::warn!(function = %id, field, "flow-control setting is not enforced by the embedded executor");
        }
    }
    Ok(FunctionDef {
        app_id: app_id.to_string(),
        call: CallTarget::new(&id, &url),
        id,
        name,
        triggers,
        url,
        max_attempts: retries + 1,
        concurrency,
        cancel,
    })
}

/// Reads the parts of one function's config, naming the function in every error.
struct Reader<'a> {
    id: &'a str,
}

impl Reader<'_> {
    fn invalid(&self, detail: String) -> RegisterError {
        RegisterError::Invalid {
            function: self.id.to_string(),
            detail,
        }
    }

    fn expr(
        &self,
        place: &'static str,
        src: &str,
        scope: Scope,
    ) -> Result<Expression, RegisterError> {
        Expression::parse(src, scope).map_err(|error| RegisterError::Expression {
            function: self.id.to_string(),
            place,
            source_text: src.to_string(),
            error,
        })
    }

    fn triggers(&self, raw: &Value) -> Result<Vec<Trigger>, RegisterError> {
        let raw_triggers = raw
            .get("triggers")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegisterError::NoTriggers {
                function: self.id.to_string(),
            })?;
        let mut triggers = Vec::with_capacity(raw_triggers.len());
        for (i, t) in raw_triggers.iter().enumerate() {
            if let Some(event) = t.get("event").and_then(Value::as_str) {
                let expression = match t.get("expression").and_then(Value::as_str) {
                    Some(src) if !src.trim().is_empty() => {
                        Some(self.expr("trigger", src, Scope::Event)?)
                    }
                    _ => None,
                };
                triggers.push(Trigger::Event {
                    name: event.to_string(),
                    expression,
                });
            } else if let Some(cron) = t.get("cron").and_then(Value::as_str) {
                let schedule = Schedule::parse(cron).map_err(|error| RegisterError::Cron {
                    function: self.id.to_string(),
                    schedule: cron.to_string(),
                    error,
                })?;
                triggers.push(Trigger::Cron {
                    source: cron.to_string(),
                    schedule,
                });
            } else {
                return Err(RegisterError::BadTrigger {
                    function: self.id.to_string(),
                    index: i,
                });
            }
        }
        Ok(triggers)
    }

    fn concurrency(&self, raw: &Value) -> Result<Vec<ConcurrencyLimit>, RegisterError> {
        let limits: Vec<&Value> = match raw.get("concurrency") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().collect(),
            Some(Value::Object(m)) if m.contains_key("fn") || m.contains_key("step") => m
                .get("fn")
                .into_iter()
                .chain(m.get("step"))
                .flat_map(|v| v.as_array().into_iter().flatten())
                .collect(),
            Some(v) => vec![v],
        };
        let mut concurrency = Vec::new();
        for limit in limits {
            let (n, key, scope) = match limit {
                Value::Number(n) => (n.as_u64(), None, None),
                Value::Object(m) => (
                    m.get("limit").and_then(Value::as_u64),
                    m.get("key").and_then(Value::as_str),
                    m.get("scope").and_then(Value::as_str),
                ),
                other => return Err(self.invalid(format!("invalid concurrency {other}"))),
            };
            let n =
                n.ok_or_else(|| self.invalid(format!("concurrency limit missing in {limit}")))?;
            if n == 0 {
                // Inngest reads a zero limit as "no limit".
                continue;
            }
            let scope = match scope {
                None | Some("fn") => ConcurrencyScope::Function,
                Some("env" | "account") => ConcurrencyScope::Shared,
                Some(other) => {
                    return Err(self.invalid(format!("unknown concurrency scope `{other}`")));
                }
            };
            let key = key
                .map(|k| self.expr("concurrency key", k, Scope::Event))
                .transpose()?;
            if scope == ConcurrencyScope::Shared && key.is_none() {
                return Err(self.invalid("a shared concurrency scope needs a key".into()));
            }
            concurrency.push(ConcurrencyLimit {
                limit: n.min(u64::from(u32::MAX)) as u32,
                key,
                scope,
            });
        }
        Ok(concurrency)
    }

    fn cancel(&self, raw: &Value) -> Result<Vec<CancelOn>, RegisterError> {
        let entries = raw.get("cancel").and_then(Value::as_array).into_iter();
        let mut cancel = Vec::new();
        for c in entries.flatten() {
            let event = c
                .get("event")
                .and_then(Value::as_str)
                .ok_or_else(|| self.invalid(format!("cancel entry without event: {c}")))?;
            let condition = c
                .get("if")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(|s| self.expr("cancel", s, Scope::EventAndAsync))
                .transpose()?;
            cancel.push(CancelOn {
                event: event.to_string(),
                condition,
                timeout: c.get("timeout").and_then(Value::as_str).map(str::to_string),
            });
        }
        Ok(cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_js_register_body() {
        let raw = json!({"id": "my-app-configured", "name": "Configured Fn",
            "triggers": [{"event": "app/configured", "expression": "event.data.ok == true"},
                         {"cron": "0 * * * *"}],
            "steps": {"step": {"id": "step", "name": "step",
                "runtime": {"type": "http", "url": "http://127.0.0.1:3939/api/inngest?fnId=my-app-configured&stepId=step"},
                "retries": {"attempts": 7}}},
            "idempotency": "event.data.order_id",
            "concurrency": [{"limit": 5, "key": "event.data.user_id"},
                            {"limit": 100, "scope": "env", "key": "\"global\""}],
            "cancel": [{"event": "app/cancel", "timeout": "1d",
                        "if": "event.data.user_id == async.data.user_id"}]});
        let f = parse_function("my-app", 0, &raw).expect("valid function");
        assert_eq!(f.id, "my-app-configured");
        assert_eq!(f.name, "Configured Fn");
        assert_eq!(f.max_attempts, 8);
        assert!(f.url.ends_with("fnId=my-app-configured&stepId=step"));
        assert!(f.triggers[0].matches("app/configured", &json!({"data": {"ok": true}})));
        assert!(!f.triggers[0].matches("app/configured", &json!({"data": {"ok": false}})));
        assert!(!f.triggers[0].matches("app/other", &json!({"data": {"ok": true}})));
        assert_eq!(f.cron_schedules().count(), 1);
        assert_eq!(
            f.concurrency_slots(&json!({"data": {"user_id": "u1"}})),
            vec![
                ("fn:my-app-configured:u1".to_string(), 5),
                ("shared:global".to_string(), 100)
            ]
        );
        assert_eq!(f.cancel.len(), 1);
    }

    #[test]
    fn defaults_and_lenient_shapes() {
        let f = parse_function(
            "a",
            0,
            &json!({"id": "a-f", "triggers": [{"event": "x/*"}], "concurrency": 2, "retries": 0}),
        )
        .expect("valid function");
        assert_eq!(f.max_attempts, 1);
        assert_eq!(f.url, "/api/inngest");
        assert!(f.triggers[0].matches("x/y", &json!({})));
        assert_eq!(
            f.concurrency_slots(&json!({})),
            vec![("fn:a-f:".to_string(), 2)]
        );
        let d = parse_function("a", 0, &json!({"id": "a-g", "triggers": [{"event": "e"}]}))
            .expect("valid function");
        assert_eq!(d.max_attempts, DEFAULT_RETRIES + 1);
    }

    #[test]
    fn rejects_unusable_functions_at_registration() {
        let err = |raw: Value| parse_function("a", 3, &raw).unwrap_err();
        assert!(matches!(
            err(json!({"triggers": [{"event": "e"}]})),
            RegisterError::MissingId { index: 3 }
        ));
        assert!(matches!(
            err(json!({"id": "f", "triggers": []})),
            RegisterError::NoTriggers { .. }
        ));
        assert!(matches!(
            err(json!({"id": "f", "triggers": [{"x": 1}]})),
            RegisterError::BadTrigger { .. }
        ));
        assert!(matches!(
            err(
                json!({"id": "f", "triggers": [{"event": "e", "expression": "size(event.data) > 0"}]})
            ),
            RegisterError::Expression {
                place: "trigger",
                ..
            }
        ));
        assert!(matches!(
            err(
                json!({"id": "f", "triggers": [{"event": "e", "expression": "async.data.x == 1"}]})
            ),
            RegisterError::Expression { .. }
        ));
        assert!(matches!(
            err(json!({"id": "f", "triggers": [{"cron": "61 * * * *"}]})),
            RegisterError::Cron { .. }
        ));
        assert!(matches!(
            err(
                json!({"id": "f", "triggers": [{"event": "e"}], "cancel": [{"event": "c", "if": "event.x =~ 'a'"}]})
            ),
            RegisterError::Expression {
                place: "cancel",
                ..
            }
        ));
        assert!(matches!(
            err(
                json!({"id": "f", "triggers": [{"event": "e"}], "concurrency": [{"limit": 1, "scope": "env"}]})
            ),
            RegisterError::Invalid { .. }
        ));
    }
}
