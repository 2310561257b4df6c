//! Mapping HTTP failures of model APIs to [`AiError`]. Both Google-shaped
//! (`{"error":{"code","message","status","details":[…]}}`, sometimes wrapped in an array) and
//! OpenAI-shaped (`{"error":{"message","type","code"}}`) bodies are understood; anything else is
//! kept as raw text.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::AiError;
use crate::domain::triage::clamp_chars;

/// What could be learned from an error body.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ErrorBody {
    pub message: String,
    /// Google `status` (`RESOURCE_EXHAUSTED`) or OpenAI `type`/`code`.
    pub status: Option<String>,
    /// Google `ErrorInfo.reason` (`API_KEY_INVALID`).
    pub reason: Option<String>,
    /// Google `RetryInfo.retryDelay`.
    pub retry_delay: Option<Duration>,
    /// Google `QuotaFailure.violations[].quotaId`.
    pub quota_ids: Vec<String>,
}

pub(crate) fn parse_error_body(body: &str) -> ErrorBody {
    let value: Option<Value> = serde_json::from_str(body).ok();
    let error = match &value {
        Some(Value::Object(o)) => o.get("error"),
        Some(Value::Array(items)) => items.first().and_then(|i| i.get("error")),
        _ => None,
    };
    let Some(error) = error else {
        return ErrorBody {
            message: clamp_chars(body.trim(), 300),
            ..ErrorBody::default()
        };
    };
    if let Some(s) = error.as_str() {
        return ErrorBody {
            message: clamp_chars(s, 300),
            ..ErrorBody::default()
        };
    }
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let mut out = ErrorBody {
        message: clamp_chars(&text(error.get("message")).unwrap_or_default(), 300),
        status: text(error.get("status"))
            .or_else(|| text(error.get("type")))
            .or_else(|| text(error.get("code")).filter(|c| c.parse::<u32>().is_err())),
        ..ErrorBody::default()
    };
    for detail in error
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = detail.get("@type").and_then(Value::as_str).unwrap_or("");
        if kind.ends_with("google.rpc.ErrorInfo") {
            out.reason = text(detail.get("reason"));
        } else if kind.ends_with("google.rpc.RetryInfo") {
            out.retry_delay = detail
                .get("retryDelay")
                .and_then(Value::as_str)
                .and_then(parse_proto_duration);
        } else if kind.ends_with("google.rpc.QuotaFailure") {
            for v in detail
                .get("violations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = text(v.get("quotaId")) {
                    out.quota_ids.push(id);
                }
            }
        }
    }
    if out.retry_delay.is_none() {
        out.retry_delay = retry_hint_in_message(&out.message);
    }
    out
}

/// A protobuf JSON duration: `"26s"`, `"0.5s"`, `"1.250s"`.
pub(crate) fn parse_proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.trim().parse().ok()?;
    seconds(secs)
}

fn seconds(secs: f64) -> Option<Duration> {
    // Cap absurd hints at a day; a negative or NaN hint is no hint.
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// "Please retry in 55.576865699s." in a Google quota message.
fn retry_hint_in_message(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let rest = &lower[lower.find("retry in ")? + "retry in ".len()..];
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = rest[number.len()..].trim_start();
    let value: f64 = number.parse().ok()?;
    if unit.starts_with("ms") {
        seconds(value / 1000.0)
    } else if unit.starts_with('s') {
        seconds(value)
    } else {
        None
    }
}

/// `retry-after-ms` (OpenAI), or `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return seconds(ms / 1000.0);
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Classifies a non-success HTTP response.
pub(crate) fn classify_status(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> AiError {
    let info = parse_error_body(body);
    let detail = if info.message.is_empty() {
        status.to_string()
    } else {
        format!("{} ({})", info.message, status.as_u16())
    };
    match status.as_u16() {
        429 => {
            let daily = info.quota_ids.iter().any(|q| q.contains("PerDay"));
            let no_quota = info.message.contains("limit: 0");
            if daily || no_quota {
                // Retrying within minutes cannot help: an operator has to raise the quota or
                // pick a model the key may use.
                AiError::Config(format!(
                    "{provider} quota exhausted ({}): {detail}",
                    if daily {
                        "daily limit"
                    } else {
                        "model not available on this tier"
                    }
                ))
            } else {
                AiError::RateLimited {
                    retry_after: info.retry_delay.or_else(|| retry_after_header(headers)),
                    message: detail,
                }
            }
        }
        408 | 500..=599 => AiError::Transient(format!("{provider}: {detail}")),
        400 if info.reason.as_deref() == Some("API_KEY_INVALID") => {
            AiError::Config(format!("{provider} API key is invalid: {detail}"))
        }
        401 => AiError::Config(format!("{provider} rejected the credentials: {detail}")),
        403 => AiError::Config(format!("{provider} denied access: {detail}")),
        404 => AiError::Config(format!("{provider} model or endpoint not found: {detail}")),
        _ => AiError::Config(format!("{provider} rejected the request: {detail}")),
    }
}

/// Classifies a transport-level failure (no HTTP status).
pub(crate) fn classify_transport(
    provider: &str,
    err: &reqwest::Error,
    timeout: Duration,
) -> AiError {
    if err.is_timeout() {
        AiError::Transient(format!(
            "{provider} did not answer within {:.1}s",
            timeout.as_secs_f64()
        ))
    } else if err.is_connect() {
        AiError::Transient(format!("{provider} connection failed: {}", err_chain(err)))
    } else if err.is_builder() {
        AiError::Config(format!("{provider} request could not be built: {err}"))
    } else {
        AiError::Transient(format!("{provider} request failed: {}", err_chain(err)))
    }
}

fn err_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const QUOTA_429: &str = r#"{ "error": { "code": 429, "message": "You exceeded your current quota. Please retry in 55.5s.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
          { "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [ { "quotaMetric": "m", "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier" } ] },
          { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s" } ] } }"#;

    #[test]
    fn google_429_uses_retry_info() {
        let e = classify_status(
            "gemini",
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            QUOTA_429,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(26)));
        assert!(matches!(e, AiError::RateLimited { .. }));
    }

    #[test]
    fn google_429_falls_back_to_message_hint_and_header() {
        let body = r#"{"error":{"code":429,"message":"Please retry in 1.5s.","status":"RESOURCE_EXHAUSTED"}}"#;
        let e = classify_status(
            "gemini",
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            body,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        let e = classify_status("x", StatusCode::TOO_MANY_REQUESTS, &h, "busy");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = classify_status(
            "x",
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            "busy",
        );
        assert_eq!(
            e,
            AiError::RateLimited {
                retry_after: None,
                message: "busy (429)".into()
            }
        );
    }

    #[test]
    fn daily_quota_is_config() {
        let body = QUOTA_429.replace("PerModelPerMinute", "PerModelPerDay");
        let e = classify_status(
            "gemini",
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            &body,
        );
        assert!(
            matches!(e, AiError::Config(ref m) if m.contains("daily")),
            "{e:?}"
        );
        let body = r#"{"error":{"code":429,"message":"Quota exceeded, limit: 0, model: x"}}"#;
        let e = classify_status(
            "gemini",
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            body,
        );
        assert!(matches!(e, AiError::Config(_)));
    }

    #[test]
    fn status_table() {
        let h = HeaderMap::new();
        let invalid_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let e = classify_status("gemini", StatusCode::BAD_REQUEST, &h, invalid_key);
        assert!(
            matches!(e, AiError::Config(ref m) if m.contains("API key is invalid")),
            "{e:?}"
        );
        assert!(matches!(
            classify_status("g", StatusCode::BAD_REQUEST, &h, "{}"),
            AiError::Config(_)
        ));
        assert!(matches!(
            classify_status("g", StatusCode::FORBIDDEN, &h, ""),
            AiError::Config(_)
        ));
        assert!(matches!(
            classify_status("g", StatusCode::UNAUTHORIZED, &h, ""),
            AiError::Config(_)
        ));
        let e = classify_status(
            "g",
            StatusCode::NOT_FOUND,
            &h,
            r#"{"error":{"code":404,"message":"models/gemini-2.0-flash is not found for API version v1beta","status":"NOT_FOUND"}}"#,
        );
        assert!(
            matches!(e, AiError::Config(ref m) if m.contains("not found") && m.contains("gemini-2.0-flash"))
        );
        for s in [408, 500, 502, 503, 504] {
            let e = classify_status("g", StatusCode::from_u16(s).unwrap(), &h, "overloaded");
            assert!(matches!(e, AiError::Transient(_)), "{s}");
        }
    }

    #[test]
    fn body_shapes() {
        let arr = r#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#;
        let b = parse_error_body(arr);
        assert_eq!(b.message, "The model is overloaded.");
        assert_eq!(b.status.as_deref(), Some("UNAVAILABLE"));
        let openai = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        let b = parse_error_body(openai);
        assert_eq!(b.message, "Rate limit reached");
        assert_eq!(b.status.as_deref(), Some("requests"));
        let b = parse_error_body("upstream connect error");
        assert_eq!(b.message, "upstream connect error");
        let b = parse_error_body(r#"{"error":"model 'x' not found"}"#);
        assert_eq!(b.message, "model 'x' not found");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_proto_duration("26s"), Some(Duration::from_secs(26)));
        assert_eq!(
            parse_proto_duration("0.25s"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_proto_duration("26"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after_header(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after_header(&h), Some(Duration::ZERO));
    }
}
