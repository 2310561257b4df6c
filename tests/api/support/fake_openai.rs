//! A fake OpenAI-compatible `POST /v1/chat/completions` endpoint on 127.0.0.1 (random port).
//!
//! Like the fake Gemini it checks the request shape (strict `json_schema` response format with
//! the triage schema, a system and a user message, the ticket delimited) and records violations;
//! answers are scripted with [`FakeOpenAi::enqueue`] and default to a valid triage.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use ticketing::ai::{OpenAiProvider, ProviderSettings, RetryPolicy};

pub const FAKE_OPENAI_MODEL: &str = "llama3.2:3b";

#[derive(Clone, Debug)]
pub enum OpenAiReply {
    /// A valid triage: summary "Local summary of: <title>", category bug, priority medium.
    Auto,
    /// `choices[0].message.content` is this JSON value.
    Triage(Value),
    /// `choices[0].message.content` is this string.
    Text(String),
    /// `message.refusal` is set, content null.
    Refusal(String),
    /// `finish_reason: content_filter`.
    ContentFilter,
    /// Truncated: `finish_reason: length`.
    Length,
    /// 429 with a `Retry-After` header (seconds).
    RateLimited {
        retry_after_secs: u64,
    },
    /// 503.
    Unavailable,
    Delayed(Duration, Box<OpenAiReply>),
}

#[derive(Clone, Debug)]
pub struct RecordedChat {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

impl RecordedChat {
    pub fn user_text(&self) -> String {
        self.body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

struct Inner {
    script: VecDeque<OpenAiReply>,
    requests: Vec<RecordedChat>,
    violations: Vec<String>,
    required_key: Option<String>,
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct FakeOpenAi {
    base_url: String,
    shared: Shared,
    _server: super::Served,
}

impl FakeOpenAi {
    /// `required_key`: when set, requests must carry `Authorization: Bearer <key>` (else 401);
    /// when `None` (a local server) they must carry no Authorization header at all.
    pub async fn start(required_key: Option<&str>) -> FakeOpenAi {
        let shared = Shared(Arc::new(Mutex::new(Inner {
            script: VecDeque::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            required_key: required_key.map(str::to_string),
        })));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = super::Served::start(app).await;
        FakeOpenAi {
            base_url: format!("{}/v1", server.url()),
            shared,
            _server: server,
        }
    }

    /// For `AI_BASE_URL` (ends in `/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn settings(&self, api_key: Option<&str>) -> ProviderSettings {
        ProviderSettings::OpenAi {
            base_url: self.base_url.clone(),
            api_key: api_key.map(str::to_string),
            model: FAKE_OPENAI_MODEL.to_string(),
        }
    }

    pub fn provider(&self, api_key: Option<&str>, model: &str) -> OpenAiProvider {
        OpenAiProvider::new(
            ticketing::ai::http_client().expect("HTTP client"),
            self.base_url.clone(),
            api_key.map(str::to_string),
            model,
        )
        .with_retry_policy(RetryPolicy::fast())
    }

    pub fn enqueue(&self, replies: impl IntoIterator<Item = OpenAiReply>) {
        self.shared.lock().script.extend(replies);
    }

    pub fn requests(&self) -> Vec<RecordedChat> {
        self.shared.lock().requests.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "fake OpenAI saw bad requests: {v:#?}");
    }
}

fn openai_error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "message": message, "type": kind, "code": code } })),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = RecordedChat {
        path: uri.path().to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let (violations, required_key, reply) = {
        let mut inner = shared.lock();
        let violations = check_request(&request, inner.required_key.as_deref());
        inner.requests.push(request.clone());
        inner.violations.extend(violations.iter().cloned());
        let reply = inner.script.pop_front().unwrap_or(OpenAiReply::Auto);
        (violations, inner.required_key.clone(), reply)
    };
    if let Some(key) = required_key
        && request.authorization.as_deref() != Some(&format!("Bearer {key}"))
    {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            "invalid_api_key",
        );
    }
    if !violations.is_empty() {
        return openai_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "fake OpenAI rejected the request: {}",
                violations.join("; ")
            ),
            "invalid_request_error",
            "bad_request",
        );
    }
    if request.body["model"] != FAKE_OPENAI_MODEL {
        return openai_error(
            StatusCode::NOT_FOUND,
            &format!(
                "model '{}' not found",
                request.body["model"].as_str().unwrap_or("")
            ),
            "invalid_request_error",
            "model_not_found",
        );
    }
    render(reply, &request).await
}

fn check_request(r: &RecordedChat, required_key: Option<&str>) -> Vec<String> {
    let mut v = Vec::new();
    if r.path != "/v1/chat/completions" {
        v.push(format!("path must be /v1/chat/completions, got {}", r.path));
    }
    if required_key.is_none() && r.authorization.is_some() {
        v.push("no key configured, but an Authorization header was sent".into());
    }
    let b = &r.body;
    if b.is_null() {
        v.push("body is not JSON".into());
        return v;
    }
    let rf = &b["response_format"];
    if rf["type"] != "json_schema" {
        v.push("response_format.type must be json_schema".into());
    }
    if rf["json_schema"]["strict"] != true {
        v.push("response_format.json_schema.strict must be true".into());
    }
    if !rf["json_schema"]["name"].is_string() {
        v.push("response_format.json_schema.name is required".into());
    }
    let schema = &rf["json_schema"]["schema"];
    if schema["additionalProperties"] != false
        || schema["properties"]["category"]["enum"]
            .as_array()
            .is_none_or(|e| e.len() != 7)
    {
        v.push("response_format.json_schema.schema must be the strict triage schema".into());
    }
    if b["messages"][0]["role"] != "system" || b["messages"][1]["role"] != "user" {
        v.push("messages must be [system, user]".into());
    }
    let user = r.user_text();
    if user.matches("<ticket>").count() != 1 || user.matches("</ticket>").count() != 1 {
        v.push("the ticket must be delimited by exactly one <ticket>...</ticket>".into());
    }
    v
}

fn completion(content: Value, finish: &str, refusal: Option<&str>) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({
            "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            "object": "chat.completion",
            "model": FAKE_OPENAI_MODEL,
            "choices": [ {
                "index": 0,
                "message": { "role": "assistant", "content": content, "refusal": refusal },
                "finish_reason": finish
            } ],
            "usage": { "prompt_tokens": 640, "completion_tokens": 120, "total_tokens": 760 }
        })),
    )
        .into_response()
}

fn render(
    reply: OpenAiReply,
    r: &RecordedChat,
) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send + '_>> {
    Box::pin(async move {
        match reply {
            OpenAiReply::Auto => {
                let user = r.user_text();
                let title = user
                    .split_once("<title>")
                    .and_then(|(_, rest)| rest.split_once("</title>"))
                    .map(|(t, _)| t.to_string())
                    .unwrap_or_default();
                let triage = json!({
                    "summary": format!("Local summary of: {title}"),
                    "category": "bug",
                    "priority": "medium",
                    "sentiment": "negative",
                    "required_skills": ["JavaScript"],
                    "helpful_notes": "- Reproduce in the browser console.",
                    "confidence": 0.7
                });
                completion(json!(triage.to_string()), "stop", None)
            }
            OpenAiReply::Triage(v) => completion(json!(v.to_string()), "stop", None),
            OpenAiReply::Text(t) => completion(json!(t), "stop", None),
            OpenAiReply::Refusal(msg) => completion(Value::Null, "stop", Some(&msg)),
            OpenAiReply::ContentFilter => completion(json!(""), "content_filter", None),
            OpenAiReply::Length => completion(json!("{\"summary\":\"Cust"), "length", None),
            OpenAiReply::RateLimited { retry_after_secs } => {
                let mut resp = openai_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Rate limit reached for requests",
                    "requests",
                    "rate_limit_exceeded",
                );
                resp.headers_mut().insert(
                    "retry-after",
                    retry_after_secs.to_string().parse().expect("header value"),
                );
                resp
            }
            OpenAiReply::Unavailable => openai_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is overloaded",
                "server_error",
                "overloaded",
            ),
            OpenAiReply::Delayed(d, inner) => {
                tokio::time::sleep(d).await;
                render(*inner, r).await
            }
        }
    })
}
