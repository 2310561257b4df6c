//! How call requests reach the serve endpoint, and what they look like.
//!
//! [`Transport`] carries one HTTP exchange. [`RouterTransport`] hands the request to an
//! in-process `axum::Router` (the app's own `/api/inngest`, no port needed), and
//! [`HandlerTransport`] to an in-process serve handler, unsigned; [`HttpTransport`]
//! sends it over the network with reqwest. [`call_request`] builds the exact request Inngest
//! sends (reference §2.3): JCS-canonical body, `fnId`/`stepId` query, `X-Run-ID`,
//! `X-Inngest-Step-ID`, `x-inngest-req-version` and, when a signing key is set,
//! `X-Inngest-Signature`. Canonical JSON, signing and header names are the SDK's
//! ([`inngest_axum::signature`], [`inngest_axum::headers`]): the executor and the serve
//! handler it drives cannot disagree on them.

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderValue, Request, Response, Uri, header};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tower::ServiceExt;

use super::function::FunctionDef;
use super::state::RunState;
use inngest_axum::ServeHandler;
use inngest_axum::headers;
use inngest_axum::signature::{SigningKey, write_canonical, write_canonical_object};

/// Largest SDK response read (reference §2.3: 8 MB) plus headroom for streaming wrappers.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("request failed: {0}")]
    Failed(String),
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn call(&self, req: Request<Bytes>) -> Result<Response<Bytes>, TransportError>;
}

/// Calls an in-process router; only the path and query of the URL are used.
#[derive(Clone)]
pub struct RouterTransport {
    router: axum::Router,
}

impl RouterTransport {
    pub fn new(router: axum::Router) -> RouterTransport {
        RouterTransport { router }
    }
}

#[async_trait]
impl Transport for RouterTransport {
    async fn call(&self, req: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let (mut parts, body) = req.into_parts();
        parts.uri = local_uri(parts.uri)?;
        let req = Request::from_parts(parts, axum::body::Body::from(body));
        answer(self.router.clone().oneshot(req)).await
    }
}

/// Calls a serve handler in this process directly, as the code it is: no router, and no
/// signatures (see [`ServeHandler::handle_in_process`]), so the executor using it should have
/// no signing key. The handler's endpoint still checks every request from the network.
#[derive(Clone)]
pub struct HandlerTransport {
    handler: ServeHandler,
}

impl HandlerTransport {
    pub fn new(handler: ServeHandler) -> HandlerTransport {
        HandlerTransport { handler }
    }
}

#[async_trait]
impl Transport for HandlerTransport {
    async fn call(&self, req: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let (parts, body) = req.into_parts();
        let uri = local_uri(parts.uri)?;
        let handler = &self.handler;
        answer(async move {
            Ok::<_, std::convert::Infallible>(
                handler
                    .handle_in_process(parts.method, uri, parts.headers, body)
                    .await,
            )
        })
        .await
    }
}

/// The path and query of `uri`: an in-process handler has no host.
fn local_uri(uri: Uri) -> Result<Uri, TransportError> {
    if uri.scheme().is_none() {
        return Ok(uri);
    }
    let local = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    local
        .parse()
        .map_err(|e| TransportError::InvalidRequest(format!("{e}")))
}

/// Awaits an in-process response and reads its body.
async fn answer(
    call: impl Future<Output = Result<Response<axum::body::Body>, std::convert::Infallible>>,
) -> Result<Response<Bytes>, TransportError> {
    // A panicking handler is a failed attempt like any other, not a lost queue item.
    let resp = match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(call)).await {
        Ok(Ok(r)) => r,
        Ok(Err(never)) => match never {},
        Err(_) => return Err(TransportError::Failed("the serve handler panicked".into())),
    };
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| TransportError::Failed(format!("reading response body: {e}")))?;
    Ok(Response::from_parts(parts, bytes))
}

/// Calls a serve endpoint over HTTP. Relative URLs are resolved against `base_url`.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base_url: Option<url::Url>,
}

impl HttpTransport {
    pub fn new(
        timeout: std::time::Duration,
        base_url: Option<url::Url>,
    ) -> Result<HttpTransport, TransportError> {
        inngest_axum::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| TransportError::Failed(format!("building HTTP client: {e}")))?;
        Ok(HttpTransport { client, base_url })
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn call(&self, req: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let (parts, body) = req.into_parts();
        let url = if parts.uri.scheme().is_some() {
            url::Url::parse(&parts.uri.to_string())
                .map_err(|e| TransportError::InvalidRequest(e.to_string()))?
        } else {
            let base = self.base_url.as_ref().ok_or_else(|| {
                TransportError::InvalidRequest(format!(
                    "relative URL {} and no base URL",
                    parts.uri
                ))
            })?;
            base.join(
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/"),
            )
            .map_err(|e| TransportError::InvalidRequest(e.to_string()))?
        };
        let resp = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| TransportError::Failed(e.to_string()))?;
        let mut builder = Response::builder().status(resp.status());
        if let Some(h) = builder.headers_mut() {
            *h = resp.headers().clone();
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| TransportError::Failed(e.to_string()))?;
        builder
            .body(bytes)
            .map_err(|e| TransportError::Failed(e.to_string()))
    }
}

/// A stable UUID for a function, sent as `ctx.fn_id` (Inngest's internal function id).
pub fn function_uuid(function_id: &str) -> String {
    let digest = Sha256::digest(function_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// What every call of one function shares, worked out once when the function is registered:
/// its URL up to the step id, and its `fn_id`.
#[derive(Debug, Clone)]
pub struct CallTarget {
    /// The step URL with `fnId` set and `stepId=` last, waiting for the step id; or why the
    /// function's URL cannot be called.
    url_prefix: Result<String, String>,
    fn_uuid: String,
}

impl CallTarget {
    pub fn new(function_id: &str, url: &str) -> CallTarget {
        CallTarget {
            url_prefix: url_prefix(function_id, url),
            fn_uuid: function_uuid(function_id),
        }
    }
}

/// The function's step URL with `fnId` and an empty `stepId`, which is therefore last.
fn url_prefix(function_id: &str, step_url: &str) -> Result<String, String> {
    let absolute = step_url.contains("://");
    let mut url = if absolute {
        url::Url::parse(step_url)
    } else {
        url::Url::parse("http://executor.invalid").and_then(|b| b.join(step_url))
    }
    .map_err(|e| format!("function {function_id} has a bad URL: {e}"))?;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "fnId" && k != "stepId")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("fnId", function_id)
        .append_pair("stepId", "");
    Ok(if absolute {
        url.to_string()
    } else {
        format!("{}?{}", url.path(), url.query().unwrap_or(""))
    })
}

/// The URL of a call: the function's step URL with `fnId` and `stepId` set.
pub fn call_url(def: &FunctionDef, step_id: &str) -> Result<String, TransportError> {
    let prefix = def
        .call
        .url_prefix
        .as_ref()
        .map_err(|e| TransportError::InvalidRequest(e.clone()))?;
    let mut url = String::with_capacity(prefix.len() + step_id.len());
    url.push_str(prefix);
    url.extend(url::form_urlencoded::byte_serialize(step_id.as_bytes()));
    Ok(url)
}

/// The call request body (reference §2.3), before canonicalization.
pub fn call_body(run: &RunState, def: &FunctionDef, step_id: &str, attempt: u32) -> Value {
    json!({
        "ctx": call_ctx(run, def, step_id, attempt),
        "event": run.event,
        "events": run.events,
        "steps": run.steps,
        "use_api": false,
        "version": run.version,
    })
}

fn call_ctx(run: &RunState, def: &FunctionDef, step_id: &str, attempt: u32) -> Value {
    json!({
        "attempt": attempt,
        "disable_immediate_execution": run.force_step_plan,
        "env": "",
        "fn_id": def.call.fn_uuid,
        "max_attempts": run.max_attempts,
        "run_id": run.id,
        "stack": {"current": run.stack.len(), "stack": run.stack},
        "step_id": step_id,
        "use_api": false,
    })
}

/// [`call_body`] in its canonical form, written from the run itself: the event and the steps,
/// which grow with every step, are borrowed rather than copied into a [`Value`] first.
fn canonical_call_body(
    run: &RunState,
    def: &FunctionDef,
    step_id: &str,
    attempt: u32,
    omit_fn_id: bool,
) -> String {
    let mut ctx = call_ctx(run, def, step_id, attempt);
    if omit_fn_id && let Some(ctx) = ctx.as_object_mut() {
        ctx.remove("fn_id");
    }
    let mut out = String::with_capacity(1024);
    // The keys in canonical (sorted) order.
    out.push_str("{\"ctx\":");
    write_canonical(&ctx, &mut out);
    out.push_str(",\"event\":");
    write_canonical(&run.event, &mut out);
    out.push_str(",\"events\":[");
    for (i, event) in run.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_canonical(event, &mut out);
    }
    out.push_str("],\"steps\":");
    write_canonical_object(&run.steps, &mut out);
    out.push_str(",\"use_api\":false,\"version\":");
    write_canonical(&Value::from(run.version), &mut out);
    out.push('}');
    out
}

/// How call requests are dressed, beyond the run itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallSettings<'a> {
    /// Signs the body like Inngest Cloud when set.
    pub signing_key: Option<&'a SigningKey>,
    /// Omit `ctx.fn_id`. JS SDK v4 reads its presence as "this server checkpoints" and first
    /// tries `POST /v1/checkpoint/…`, which this executor does not serve.
    pub omit_fn_id: bool,
}

pub fn call_request(
    run: &RunState,
    def: &FunctionDef,
    step_id: &str,
    attempt: u32,
    settings: CallSettings<'_>,
    now: DateTime<Utc>,
) -> Result<Request<Bytes>, TransportError> {
    let signing_key = settings.signing_key;
    let body = canonical_call_body(run, def, step_id, attempt, settings.omit_fn_id).into_bytes();
    let header = |v: &str| {
        HeaderValue::from_str(v).map_err(|e| TransportError::InvalidRequest(e.to_string()))
    };
    let mut req = Request::builder()
        .method(axum::http::Method::POST)
        .uri(call_url(def, step_id)?)
        .header(header::CONTENT_TYPE, "application/json")
        .header(headers::RUN_ID, header(&run.id)?)
        .header(headers::STEP_ID, header(step_id)?)
        .header(headers::REQ_VERSION, run.version.to_string());
    if let Some(key) = signing_key {
        req = req.header(
            headers::SIGNATURE,
            header(&key.sign(&body, now.timestamp()))?,
        );
    }
    req.body(Bytes::from(body))
        .map_err(|e| TransportError::InvalidRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::function::parse_function;
    use inngest_axum::signature::canonical_json;

    const KEY: &str =
        "signkey-test-8ee2262a15e8d3c42d6a840db7af3de2aab08ef632b32a37a687f24b34dba3ff";

    fn def(url: &str) -> FunctionDef {
        parse_function(
            "my-app",
            0,
            &json!({"id": "my-app-hello", "triggers": [{"event": "app/hello"}],
                    "steps": {"step": {"runtime": {"url": url}}}}),
        )
        .expect("valid")
    }

    #[test]
    fn call_urls_replace_fn_and_step_ids() {
        let d = def("http://127.0.0.1:3939/api/inngest?fnId=my-app-hello&stepId=step");
        assert_eq!(
            call_url(&d, "98bf").expect("url"),
            "http://127.0.0.1:3939/api/inngest?fnId=my-app-hello&stepId=98bf"
        );
        let rel = def("/api/inngest?x=1");
        assert_eq!(
            call_url(&rel, "step").expect("url"),
            "/api/inngest?x=1&fnId=my-app-hello&stepId=step"
        );
        assert_eq!(
            call_url(&rel, "a b&c=d").expect("url"),
            "/api/inngest?x=1&fnId=my-app-hello&stepId=a+b%26c%3Dd"
        );
        let bad = def("http://[::1/api/inngest");
        assert!(matches!(
            call_url(&bad, "step"),
            Err(TransportError::InvalidRequest(e)) if e.contains("bad URL")
        ));
    }

    #[test]
    fn builds_the_golden_request_body() {
        // Reference §4.3 golden exchange: the same body bytes, signed with the same signature.
        let event = json!({"data": {"name": "Ada"}, "id": "01HEVT0000000000000000000", "name": "app/hello",
                           "ts": 1700000000000_i64, "user": {}});
        let mut run = RunState::new(
            "01HRUN00000000000000000000".into(),
            "my-app",
            "my-app-hello",
            1,
            event,
            Utc::now(),
        );
        run.version = 2;
        let d = def("http://127.0.0.1:3939/api/inngest");
        let mut body = call_body(&run, &d, "step", 0);
        // The JS oracle was driven without these optional ctx fields.
        for k in ["env", "fn_id", "max_attempts", "step_id"] {
            body["ctx"].as_object_mut().expect("ctx").remove(k);
        }
        body.as_object_mut().expect("body").remove("use_api");
        let bytes = canonical_json(&body);
        assert_eq!(
            bytes,
            r#"{"ctx":{"attempt":0,"disable_immediate_execution":false,"run_id":"01HRUN00000000000000000000","stack":{"current":0,"stack":[]},"use_api":false},"event":{"data":{"name":"Ada"},"id":"01HEVT0000000000000000000","name":"app/hello","ts":1700000000000,"user":{}},"events":[{"data":{"name":"Ada"},"id":"01HEVT0000000000000000000","name":"app/hello","ts":1700000000000,"user":{}}],"steps":{},"version":2}"#
        );
        assert_eq!(
            SigningKey::new(KEY).sign(bytes.as_bytes(), 1795356375),
            "t=1795356375&s=f21e46a5eb3ab4c696badba48a782eeefb1954b7a2a9f04b1cfcf7bbe1153272"
        );
    }

    fn signed(key: &SigningKey) -> CallSettings<'_> {
        CallSettings {
            signing_key: Some(key),
            omit_fn_id: false,
        }
    }

    #[test]
    fn the_written_body_is_the_call_body_in_canonical_form() {
        let mut run = RunState::new(
            "r1".into(),
            "my-app",
            "my-app-hello",
            3,
            json!({"name": "app/hello", "data": {"z": 1.5, "a": "\u{1}é", "big": 9007199254740993u64}}),
            Utc::now(),
        );
        run.events
            .push(json!({"name": "app/other", "data": {"b": [true, null], "a": -7}}));
        for (id, data) in [
            ("98bf", json!({"data": "A"})),
            ("0a1c", json!({"error": {"message": "x\ny"}})),
        ] {
            run.stack.push(id.into());
            run.steps.insert(id.into(), data);
        }
        let d = def("http://127.0.0.1:3939/api/inngest");
        for omit_fn_id in [false, true] {
            let mut expected = call_body(&run, &d, "abcd", 2);
            if omit_fn_id {
                expected["ctx"]
                    .as_object_mut()
                    .expect("ctx")
                    .remove("fn_id");
            }
            assert_eq!(
                canonical_call_body(&run, &d, "abcd", 2, omit_fn_id),
                canonical_json(&expected)
            );
        }
    }

    #[test]
    fn call_requests_carry_the_protocol_headers() {
        let mut run = RunState::new(
            "r1".into(),
            "my-app",
            "my-app-hello",
            3,
            json!({"name": "app/hello"}),
            Utc::now(),
        );
        run.stack.push("98bf".into());
        run.steps.insert("98bf".into(), json!({"data": "A"}));
        run.force_step_plan = true;
        let d = def("http://127.0.0.1:3939/api/inngest");
        let now = Utc::now();
        let req =
            call_request(&run, &d, "abcd", 2, signed(&SigningKey::new(KEY)), now).expect("request");
        assert_eq!(req.method(), axum::http::Method::POST);
        assert_eq!(req.headers()[headers::RUN_ID], "r1");
        assert_eq!(req.headers()[headers::STEP_ID], "abcd");
        assert_eq!(req.headers()[headers::REQ_VERSION], "-1");
        let sig = req.headers()[headers::SIGNATURE].to_str().expect("ascii");
        assert_eq!(sig, SigningKey::new(KEY).sign(req.body(), now.timestamp()));
        let body: Value = serde_json::from_slice(req.body()).expect("json");
        assert_eq!(body["ctx"]["attempt"], 2);
        assert_eq!(body["ctx"]["max_attempts"], 3);
        assert_eq!(body["ctx"]["disable_immediate_execution"], true);
        assert_eq!(
            body["ctx"]["stack"],
            json!({"current": 1, "stack": ["98bf"]})
        );
        assert_eq!(body["ctx"]["fn_id"], function_uuid("my-app-hello"));
        assert_eq!(body["steps"]["98bf"], json!({"data": "A"}));
        let plain = CallSettings {
            signing_key: None,
            omit_fn_id: true,
        };
        let unsigned = call_request(&run, &d, "step", 0, plain, now).expect("request");
        assert!(unsigned.headers().get(headers::SIGNATURE).is_none());
        let body: Value = serde_json::from_slice(unsigned.body()).expect("json");
        assert!(body["ctx"].get("fn_id").is_none());
        assert_eq!(body["ctx"]["run_id"], "r1");
    }
}
