//! A fake Gemini API on 127.0.0.1 (random port) for tests.
//!
//! It checks every request against what the real API needs and what this project promises
//! (key only in the `x-goog-api-key` header, JSON mode with the triage schema, the ticket
//! delimited as data, a sane output budget). A request that breaks a rule is recorded in
//! [`FakeGemini::violations`] and answered with a 400, so a client bug cannot go unnoticed.
//!
//! Answers are scripted: [`FakeGemini::enqueue`] queues replies used in order; when the queue is
//! empty the default reply is used ([`GeminiReply::Auto`] unless changed). Requests for models
//! other than the known ones get the API's real 404, and a wrong key its real 400
//! `API_KEY_INVALID`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use ticketing::ai::{GeminiProvider, ProviderSettings, RetryPolicy};

pub const FAKE_GEMINI_KEY: &str = "fake-gemini-key-0123456789";
pub const FAKE_GEMINI_MODEL: &str = "gemini-3.5-flash-lite";

const CATEGORIES: [&str; 7] = [
    "bug",
    "feature_request",
    "technical_issue",
    "billing",
    "account",
    "question",
    "other",
];
const FIELDS: [&str; 7] = [
    "summary",
    "category",
    "priority",
    "sentiment",
    "required_skills",
    "helpful_notes",
    "confidence",
];

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum GeminiReply {
    /// A valid triage derived from the request: summary "Summary of: <title>", category
    /// technical_issue, priority high, sentiment neutral, skills ["Database"], confidence 0.9.
    Auto,
    /// A normal answer whose text is this JSON value.
    Triage(Value),
    /// A normal answer (finishReason STOP) whose text is this string, e.g. broken JSON.
    Text(String),
    /// The prompt was blocked: `promptFeedback.blockReason`, no candidates.
    PromptBlocked(String),
    /// The answer was blocked: a candidate with `finishReason: SAFETY` and no content.
    SafetyFinish,
    /// Thinking used the budget: partial text with `finishReason: MAX_TOKENS`.
    MaxTokens,
    /// 429 RESOURCE_EXHAUSTED with `RetryInfo.retryDelay` (e.g. "26s").
    RateLimited { retry_delay: String },
    /// 429 for an exhausted daily quota.
    DailyQuotaExhausted,
    /// 503 UNAVAILABLE ("The model is overloaded").
    Unavailable,
    /// 500 INTERNAL.
    Internal,
    /// Answer the inner reply after a delay (for timeouts).
    Delayed(Duration, Box<GeminiReply>),
    /// Answer the inner reply once the gate opens ([`gate`]), so a test decides when triage
    /// finishes.
    Held(tokio::sync::watch::Receiver<bool>, Box<GeminiReply>),
}

/// A closed gate for [`GeminiReply::Held`]: send `true` to open it.
pub fn gate() -> (
    tokio::sync::watch::Sender<bool>,
    tokio::sync::watch::Receiver<bool>,
) {
    tokio::sync::watch::channel(false)
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    pub model: Option<String>,
    pub body: Value,
}

impl RecordedRequest {
    /// The user message (the delimited ticket).
    pub fn user_text(&self) -> String {
        self.body["contents"][0]["parts"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn system_text(&self) -> String {
        self.body["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn max_output_tokens(&self) -> Option<u64> {
        self.body["generationConfig"]["maxOutputTokens"].as_u64()
    }

    pub fn thinking_level(&self) -> Option<String> {
        self.body["generationConfig"]["thinkingConfig"]["thinkingLevel"]
            .as_str()
            .map(str::to_string)
    }
}

struct Inner {
    script: VecDeque<GeminiReply>,
    default: GeminiReply,
    requests: Vec<RecordedRequest>,
    /// Ticket titles of the requests answered with a triage (a 200), in order.
    answered: Vec<String>,
    violations: Vec<String>,
    models: Vec<String>,
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

pub struct FakeGemini {
    base_url: String,
    shared: Shared,
    _server: super::Served,
}

impl FakeGemini {
    /// Starts the server on a random loopback port. Must be called inside a tokio runtime.
    pub async fn start() -> FakeGemini {
        let shared = Shared(Arc::new(Mutex::new(Inner {
            script: VecDeque::new(),
            default: GeminiReply::Auto,
            requests: Vec::new(),
            answered: Vec::new(),
            violations: Vec::new(),
            models: vec![FAKE_GEMINI_MODEL.to_string()],
        })));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = super::Served::start(app).await;
        FakeGemini {
            base_url: server.url(),
            shared,
            _server: server,
        }
    }

    /// For `GEMINI_BASE_URL`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Provider settings pointing here with the accepted key and the known model.
    pub fn settings(&self) -> ProviderSettings {
        ProviderSettings::Gemini {
            api_key: FAKE_GEMINI_KEY.to_string(),
            model: FAKE_GEMINI_MODEL.to_string(),
            base_url: self.base_url.clone(),
        }
    }

    /// A provider pointing here (accepted key, known model) with millisecond retry delays.
    pub fn provider(&self) -> GeminiProvider {
        self.provider_with(FAKE_GEMINI_KEY, FAKE_GEMINI_MODEL)
    }

    pub fn provider_with(&self, key: &str, model: &str) -> GeminiProvider {
        GeminiProvider::new(
            ticketing::ai::http_client().expect("HTTP client"),
            key,
            model,
            self.base_url.clone(),
        )
        .with_retry_policy(RetryPolicy::fast())
    }

    /// Replies to use, in order, before the default one.
    pub fn enqueue(&self, replies: impl IntoIterator<Item = GeminiReply>) {
        self.shared.lock().script.extend(replies);
    }

    /// The reply used when the queue is empty.
    pub fn set_default(&self, reply: GeminiReply) {
        self.shared.lock().default = reply;
    }

    /// Makes another model id known (others get 404).
    pub fn add_model(&self, model: &str) {
        self.shared.lock().models.push(model.to_string());
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Ticket titles whose request got a successful answer (the whole answer was produced; a
    /// request still held by [`GeminiReply::Delayed`] is not counted), in order.
    pub fn answered_titles(&self) -> Vec<String> {
        self.shared.lock().answered.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Broken request rules, one message each.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "fake Gemini saw bad requests: {v:#?}");
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = uri.path().to_string();
    let model = path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.strip_suffix(":generateContent"))
        .map(str::to_string);
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(str::to_string),
        api_key: header("x-goog-api-key"),
        authorization: header("authorization"),
        model: model.clone(),
        body: body_json,
    };

    let violations = check_request(&request, &body);
    let (reply, known_model) = {
        let mut inner = shared.lock();
        inner.requests.push(request.clone());
        inner.violations.extend(violations.iter().cloned());
        let known = model.as_ref().is_some_and(|m| inner.models.contains(m));
        let reply = if violations.is_empty()
            && known
            && request.api_key.as_deref() == Some(FAKE_GEMINI_KEY)
        {
            Some(
                inner
                    .script
                    .pop_front()
                    .unwrap_or_else(|| inner.default.clone()),
            )
        } else {
            None
        };
        (reply, known)
    };

    if !violations.is_empty() {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!(
                "fake Gemini rejected the request: {}",
                violations.join("; ")
            ),
            json!([]),
        );
    }
    if request.api_key.as_deref() != Some(FAKE_GEMINI_KEY) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": { "service": "generativelanguage.googleapis.com" }
            }]),
        );
    }
    if !known_model {
        return google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!(
                "models/{} is not found for API version v1beta, or is not supported for generateContent.",
                model.unwrap_or_default()
            ),
            json!([]),
        );
    }
    let Some(reply) = reply else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let response = render(reply, &request).await;
    if response.status().is_success() {
        shared.lock().answered.push(title_of(&request));
    }
    response
}

/// The rules a request must follow.
fn check_request(r: &RecordedRequest, raw_body: &[u8]) -> Vec<String> {
    let mut v = Vec::new();
    if r.method != "POST" {
        v.push(format!("method must be POST, got {}", r.method));
    }
    if r.model.is_none() {
        v.push(format!(
            "path must be /v1beta/models/{{model}}:generateContent, got {}",
            r.path
        ));
    }
    if let Some(q) = &r.query
        && (q.contains("key=") || q.contains(FAKE_GEMINI_KEY))
    {
        v.push("the API key must not be in the URL".into());
    }
    if r.api_key.is_none() {
        v.push("missing x-goog-api-key header".into());
    }
    if r.authorization.is_some() {
        v.push("unexpected Authorization header (Gemini uses x-goog-api-key)".into());
    }
    let b = &r.body;
    if b.is_null() {
        v.push(format!(
            "body is not JSON: {}",
            String::from_utf8_lossy(raw_body)
        ));
        return v;
    }
    if r.system_text().trim().is_empty() {
        v.push("systemInstruction.parts[0].text is missing".into());
    }
    if b["contents"][0]["role"] != "user" {
        v.push("contents[0].role must be \"user\"".into());
    }
    let user = r.user_text();
    if user.matches("<ticket>").count() != 1 || user.matches("</ticket>").count() != 1 {
        v.push("the ticket must be delimited by exactly one <ticket>...</ticket>".into());
    }
    if !user.contains("<title>") || !user.contains("<description>") {
        v.push("the ticket must carry <title> and <description>".into());
    }
    let g = &b["generationConfig"];
    if g["responseMimeType"] != "application/json" {
        v.push("generationConfig.responseMimeType must be application/json".into());
    }
    if g.get("responseSchema").is_some() {
        v.push("use responseJsonSchema, not responseSchema".into());
    }
    let schema = &g["responseJsonSchema"];
    if schema.is_null() {
        v.push("generationConfig.responseJsonSchema is missing".into());
    } else {
        if schema["properties"]["category"]["enum"] != json!(CATEGORIES) {
            v.push("responseJsonSchema category enum must list the categories".into());
        }
        if schema["required"] != json!(FIELDS) {
            v.push("responseJsonSchema must require every triage field".into());
        }
        if schema["additionalProperties"] != false {
            v.push("responseJsonSchema must set additionalProperties false".into());
        }
    }
    match g["maxOutputTokens"].as_u64() {
        Some(n) if n >= 2048 => {}
        other => v.push(format!(
            "maxOutputTokens must be at least 2048, got {other:?}"
        )),
    }
    let thinking = &g["thinkingConfig"];
    if thinking.get("thinkingLevel").is_some() && thinking.get("thinkingBudget").is_some() {
        v.push("thinkingLevel and thinkingBudget together are a 400".into());
    }
    if let Some(level) = thinking.get("thinkingLevel")
        && !matches!(level.as_str(), Some("MINIMAL" | "LOW"))
    {
        v.push(format!(
            "thinkingLevel should be MINIMAL or LOW for triage, got {level}"
        ));
    }
    v
}

fn title_of(r: &RecordedRequest) -> String {
    let user = r.user_text();
    user.split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(t, _)| t.to_string())
        .unwrap_or_default()
}

/// The triage [`GeminiReply::Auto`] answers with.
pub fn auto_triage(title: &str) -> Value {
    json!({
        "summary": format!("Summary of: {title}"),
        "category": "technical_issue",
        "priority": "high",
        "sentiment": "neutral",
        "required_skills": ["Database"],
        "helpful_notes": "### Checks\n- Look at the database logs.\n- Ask for the exact error.",
        "confidence": 0.9
    })
}

fn usage() -> Value {
    json!({
        "promptTokenCount": 812,
        "candidatesTokenCount": 96,
        "thoughtsTokenCount": 40,
        "totalTokenCount": 948,
        "promptTokensDetails": [ { "modality": "TEXT", "tokenCount": 812 } ],
        "serviceTier": "standard"
    })
}

fn answer(text: &str, finish: &str) -> Response {
    let body = json!({
        "candidates": [ {
            "content": { "role": "model", "parts": [ { "text": text } ] },
            "finishReason": finish,
            "index": 0,
            "safetyRatings": [ { "category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE" } ]
        } ],
        "usageMetadata": usage(),
        "modelVersion": FAKE_GEMINI_MODEL,
        "responseId": format!("fake-{}", uuid::Uuid::new_v4().simple()),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn google_error(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    let body = json!({ "error": {
        "code": status.as_u16(), "message": message, "status": code, "details": details
    } });
    (status, axum::Json(body)).into_response()
}

fn render(
    reply: GeminiReply,
    request: &RecordedRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send + '_>> {
    Box::pin(async move {
        match reply {
            GeminiReply::Auto => answer(&auto_triage(&title_of(request)).to_string(), "STOP"),
            GeminiReply::Triage(v) => answer(&v.to_string(), "STOP"),
            GeminiReply::Text(t) => answer(&t, "STOP"),
            GeminiReply::PromptBlocked(reason) => (
                StatusCode::OK,
                axum::Json(json!({
                    "promptFeedback": {
                        "blockReason": reason,
                        "safetyRatings": [ { "category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true } ]
                    },
                    "usageMetadata": { "promptTokenCount": 700, "totalTokenCount": 700 },
                    "modelVersion": FAKE_GEMINI_MODEL
                })),
            )
                .into_response(),
            GeminiReply::SafetyFinish => (
                StatusCode::OK,
                axum::Json(json!({
                    "candidates": [ {
                        "finishReason": "SAFETY",
                        "index": 0,
                        "safetyRatings": [ { "category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": true } ]
                    } ],
                    "usageMetadata": { "promptTokenCount": 700, "totalTokenCount": 700 },
                    "modelVersion": FAKE_GEMINI_MODEL
                })),
            )
                .into_response(),
            GeminiReply::MaxTokens => (
                StatusCode::OK,
                axum::Json(json!({
                    "candidates": [ {
                        "content": { "role": "model", "parts": [ { "text": "{\"summary\": \"Customer" } ] },
                        "finishReason": "MAX_TOKENS",
                        "index": 0
                    } ],
                    "usageMetadata": { "promptTokenCount": 700, "candidatesTokenCount": 6, "thoughtsTokenCount": 2042, "totalTokenCount": 2748 },
                    "modelVersion": FAKE_GEMINI_MODEL
                })),
            )
                .into_response(),
            GeminiReply::RateLimited { retry_delay } => google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
                json!([
                    { "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                      "violations": [ { "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                                        "quotaDimensions": { "location": "global", "model": FAKE_GEMINI_MODEL },
                                        "quotaValue": "15" } ] },
                    { "@type": "type.googleapis.com/google.rpc.Help",
                      "links": [ { "description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits" } ] },
                    { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay }
                ]),
            ),
            GeminiReply::DailyQuotaExhausted => google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
                json!([
                    { "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                      "violations": [ { "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                        "quotaValue": "1000" } ] },
                    { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3600s" }
                ]),
            ),
            GeminiReply::Unavailable => google_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
                json!([]),
            ),
            GeminiReply::Internal => google_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "An internal error has occurred.",
                json!([]),
            ),
            GeminiReply::Delayed(d, inner) => {
                tokio::time::sleep(d).await;
                render(*inner, request).await
            }
            GeminiReply::Held(mut open, inner) => {
                // A dropped sender opens the gate too: the test is over.
                let _ = open.wait_for(|open| *open).await;
                render(*inner, request).await
            }
        }
    })
}
