//! Reading an SDK's answer to a call request (reference §2.3, §3), leniently like the server's
//! `httpdriver`: the status, `X-Inngest-No-Retry`, `Retry-After` and the opcode list.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::duration;
use inngest_axum::Opcode;
use inngest_axum::headers;

/// An opcode as an SDK named it. Unknown names are kept, not rejected, so that the run fails
/// with a message naming the opcode instead of the whole answer being unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Known(Opcode),
    Unknown(String),
}

impl OpKind {
    fn parse(name: &str) -> OpKind {
        Opcode::from_name(name).map_or_else(|| OpKind::Unknown(name.to_string()), OpKind::Known)
    }

    pub fn name(&self) -> &str {
        match self {
            OpKind::Known(op) => op.name(),
            OpKind::Unknown(name) => name,
        }
    }

    pub fn is(&self, op: Opcode) -> bool {
        *self == OpKind::Known(op)
    }
}

/// One generator opcode.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub kind: OpKind,
    pub id: String,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub opts: Value,
    pub data: Value,
    pub error: Option<Value>,
}

impl Op {
    pub fn from_json(v: &Value) -> Option<Op> {
        let obj = v.as_object()?;
        let kind = OpKind::parse(obj.get("op").and_then(Value::as_str)?);
        let str_of = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Op {
            kind,
            id: str_of("id").unwrap_or_default(),
            name: str_of("name"),
            display_name: str_of("displayName").or_else(|| {
                obj.get("userland")
                    .and_then(|u| u.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
            opts: obj.get("opts").cloned().unwrap_or(Value::Null),
            data: obj.get("data").cloned().unwrap_or(Value::Null),
            error: obj.get("error").cloned().filter(|e| !e.is_null()),
        })
    }

    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.opts.get(key).and_then(Value::as_str)
    }

    /// The label shown in run history.
    pub fn label(&self) -> Option<String> {
        self.display_name.clone().or_else(|| self.name.clone())
    }
}

/// A failed call: non-2xx answer, a 2xx that did not come from an SDK, or a transport error.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    pub status: Option<u16>,
    pub no_retry: bool,
    pub retry_at: Option<DateTime<Utc>>,
    /// `{name, message, …}`.
    pub error: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SdkResponse {
    /// 200: the function returned this value.
    Complete(Value),
    /// 206: opcodes to apply (possibly none), with the retry headers that qualify a StepError.
    Ops {
        ops: Vec<Op>,
        no_retry: bool,
        retry_at: Option<DateTime<Utc>>,
    },
    Error(CallError),
}

/// What a call produced, with the request version the SDK chose.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    pub response: SdkResponse,
    pub request_version: Option<i64>,
}

pub fn error_value(name: &str, message: impl Into<String>) -> Value {
    json!({"name": name, "message": message.into()})
}

/// Turns any error body into the `{name, message, …}` shape.
fn normalize_error(body: &[u8], status: u16) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut m)) => {
            if !m.contains_key("message") {
                let msg = m
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {status}"));
                m.insert("message".into(), Value::String(msg));
            }
            m.entry("name")
                .or_insert_with(|| Value::String("Error".into()));
            Value::Object(m)
        }
        Ok(Value::String(s)) => error_value("Error", s),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                error_value("Error", format!("HTTP {status}"))
            } else {
                error_value("Error", text.chars().take(2000).collect::<String>())
            }
        }
    }
}

pub fn parse_response(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> CallOutcome {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request_version = header(headers::REQ_VERSION).and_then(|v| v.trim().parse().ok());

    // A streamed answer (201) wraps the real one.
    if status == 201
        && let Ok(wrapped) = serde_json::from_slice::<Value>(body.trim_ascii_start())
    {
        let inner_status = wrapped.get("status").and_then(Value::as_u64).unwrap_or(500) as u16;
        let mut inner_headers = headers.clone();
        if let Some(h) = wrapped.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                if let (Ok(name), Some(Ok(value))) = (
                    axum::http::HeaderName::try_from(k.as_str()),
                    v.as_str().map(axum::http::HeaderValue::from_str),
                ) {
                    inner_headers.insert(name, value);
                }
            }
        }
        let inner_body = match wrapped.get("body") {
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(other) => other.to_string().into_bytes(),
            None => Vec::new(),
        };
        return parse_response(inner_status, &inner_headers, &inner_body, now);
    }

    let no_retry = header(headers::NO_RETRY).map(|v| v.eq_ignore_ascii_case("true"));
    let retry_at = header(headers::RETRY_AFTER).and_then(|v| duration::retry_after(v, now));
    let fail = |error: Value, no_retry: bool| CallOutcome {
        response: SdkResponse::Error(CallError {
            status: Some(status),
            no_retry,
            retry_at,
            error,
        }),
        request_version,
    };

    if (200..300).contains(&status) {
        if header(headers::SDK).is_none() {
            return fail(
                error_value("NotSDK", "The response did not come from an Inngest SDK"),
                false,
            );
        }
        let parsed: Result<Value, _> = if body.iter().all(u8::is_ascii_whitespace) {
            Ok(Value::Null)
        } else {
            serde_json::from_slice(body)
        };
        return match (status, parsed) {
            (206, Ok(v)) => {
                let items = match v {
                    Value::Array(a) => a,
                    Value::Null => Vec::new(),
                    other => vec![other],
                };
                let mut ops = Vec::with_capacity(items.len());
                for item in &items {
                    match Op::from_json(item) {
                        Some(op) => ops.push(op),
                        None => {
                            return fail(
                                error_value("InvalidOpcode", format!("cannot read opcode {item}")),
                                false,
                            );
                        }
                    }
                }
                CallOutcome {
                    response: SdkResponse::Ops {
                        ops,
                        no_retry: no_retry.unwrap_or(false),
                        retry_at,
                    },
                    request_version,
                }
            }
            (_, Ok(v)) => CallOutcome {
                response: SdkResponse::Complete(v),
                request_version,
            },
            (_, Err(e)) => fail(
                error_value("InvalidResponse", format!("response body is not JSON: {e}")),
                false,
            ),
        };
    }
    fail(normalize_error(body, status), no_retry.unwrap_or(false))
}

pub fn transport_error(message: impl Into<String>) -> CallOutcome {
    CallOutcome {
        response: SdkResponse::Error(CallError {
            status: None,
            no_retry: false,
            retry_at: None,
            error: error_value("TransportError", message),
        }),
        request_version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk_headers(extra: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::SDK, "rust:v0.1.0".parse().expect("BUG"));
        h.insert(headers::REQ_VERSION, "2".parse().expect("BUG"));
        for (k, v) in extra {
            h.insert(*k, v.parse().expect("BUG"));
        }
        h
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("BUG")
            .with_timezone(&Utc)
    }

    #[test]
    fn completes_with_the_returned_value() {
        let out = parse_response(200, &sdk_headers(&[]), br#"{"hello":"Ada"}"#, now());
        assert_eq!(out.response, SdkResponse::Complete(json!({"hello": "Ada"})));
        assert_eq!(out.request_version, Some(2));
    }

    #[test]
    fn reads_opcodes_as_array_or_single_object() {
        let body = br#"[{"id":"98bf","op":"StepRun","name":"first step","opts":{},"displayName":"first step","data":"A"}]"#;
        let SdkResponse::Ops { ops, .. } =
            parse_response(206, &sdk_headers(&[]), body, now()).response
        else {
            panic!("expected ops");
        };
        assert_eq!(ops[0].kind, OpKind::Known(Opcode::StepRun));
        assert_eq!(ops[0].data, json!("A"));
        assert_eq!(ops[0].label().as_deref(), Some("first step"));
        let single = br#"{"id":"x","op":"Sleep","name":"1m"}"#;
        let SdkResponse::Ops { ops, .. } =
            parse_response(206, &sdk_headers(&[]), single, now()).response
        else {
            panic!("expected ops");
        };
        assert_eq!(ops.len(), 1);
        let SdkResponse::Ops { ops: none, .. } =
            parse_response(206, &sdk_headers(&[]), b"[]", now()).response
        else {
            panic!("expected ops");
        };
        assert!(none.is_empty());
        let odd = br#"[{"id":"x","op":"Gateway"}]"#;
        let SdkResponse::Ops { ops, .. } =
            parse_response(206, &sdk_headers(&[]), odd, now()).response
        else {
            panic!("expected ops");
        };
        assert_eq!(ops[0].kind, OpKind::Known(Opcode::Gateway));
        let unknown = br#"[{"id":"x","op":"Teleport"}]"#;
        let SdkResponse::Ops { ops, .. } =
            parse_response(206, &sdk_headers(&[]), unknown, now()).response
        else {
            panic!("expected ops");
        };
        assert_eq!(ops[0].kind, OpKind::Unknown("Teleport".into()));
        assert_eq!(ops[0].kind.name(), "Teleport");
    }

    #[test]
    fn errors_follow_the_no_retry_header_and_retry_after() {
        let h = sdk_headers(&[("x-inngest-no-retry", "false"), ("retry-after", "30")]);
        let SdkResponse::Error(e) = parse_response(
            500,
            &h,
            br#"{"name":"RetryAfterError","message":"slow down"}"#,
            now(),
        )
        .response
        else {
            panic!("expected error");
        };
        assert!(!e.no_retry);
        assert_eq!(e.retry_at, Some(now() + chrono::Duration::seconds(30)));
        assert_eq!(e.error["name"], "RetryAfterError");

        let h = sdk_headers(&[("x-inngest-no-retry", "true")]);
        let SdkResponse::Error(e) = parse_response(
            400,
            &h,
            br#"{"name":"NonRetriableError","message":"no"}"#,
            now(),
        )
        .response
        else {
            panic!("expected error");
        };
        assert!(e.no_retry);

        // Without the header every status is retried, even a 400.
        let SdkResponse::Error(e) =
            parse_response(400, &HeaderMap::new(), b"bad gateway", now()).response
        else {
            panic!("expected error");
        };
        assert!(!e.no_retry);
        assert_eq!(e.error, json!({"name": "Error", "message": "bad gateway"}));
    }

    #[test]
    fn a_2xx_without_sdk_header_is_an_error() {
        let SdkResponse::Error(e) =
            parse_response(200, &HeaderMap::new(), b"<html>", now()).response
        else {
            panic!("expected error");
        };
        assert_eq!(e.error["name"], "NotSDK");
        assert!(!e.no_retry);
    }

    #[test]
    fn unwraps_streamed_responses() {
        let body = br#"   {"status":206,"headers":{"x-inngest-no-retry":"false"},"body":"[{\"id\":\"a\",\"op\":\"StepPlanned\"}]"}"#;
        let SdkResponse::Ops { ops, .. } =
            parse_response(201, &sdk_headers(&[]), body, now()).response
        else {
            panic!("expected ops");
        };
        assert_eq!(ops[0].kind, OpKind::Known(Opcode::StepPlanned));
    }
}
