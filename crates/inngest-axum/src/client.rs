//! Outbound HTTP: sending events (`POST {event_api}/e/{key}`) and authenticated API calls
//! (`/fn/register`, `/v0/runs/…`) with the hashed signing key and its fallback.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use serde_json::{Value, json};

use super::headers;
use super::protocol::{Event, SendEventReply};
use super::settings::{InngestSettings, Mode};
use super::{FRAMEWORK, SDK_IDENT};

/// Attempts for one event send (JS sends up to 5 times, keeping the id seed).
const SEND_ATTEMPTS: u32 = 5;
const SEND_BASE_DELAY: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why events could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("cloud mode needs INNGEST_EVENT_KEY to send events")]
    /// Cloud mode with no event key: nothing was sent.
    MissingEventKey,
    #[error("event key not found (401)")]
    /// The event API rejected the event key.
    Unauthorized,
    #[error("cannot process event payload (400): {0}")]
    /// The event API could not process the payload; its message.
    BadRequest(String),
    #[error("event payload too large (413)")]
    /// The payload is over the event API's size limit.
    PayloadTooLarge,
    #[error("event API answered {status}: {message}")]
    /// The event API answered with another unexpected status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The error the event API gave, or its body.
        message: String,
    },
    #[error("event API unreachable: {0}")]
    /// The event API could not be reached after all attempts; the last error.
    Transport(String),
    #[error("invalid event API URL: {0}")]
    /// The configured event API base URL does not form a valid URL.
    InvalidUrl(String),
}

/// Installs ring as the process's rustls crypto provider, which the SDK's HTTPS client (and any
/// other rustls client built without an explicit provider) needs; a no-op once one is installed.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("BUG: an HTTP client with default TLS settings always builds")
}

/// An [`http_client`] built on first use and shared by clones: building one loads the system's
/// root certificates (milliseconds at start), and the embedded executor never needs it.
#[derive(Clone, Debug, Default)]
pub(crate) struct LazyHttp(Arc<OnceLock<reqwest::Client>>);

impl LazyHttp {
    pub(crate) fn get(&self) -> &reqwest::Client {
        self.0.get_or_init(http_client)
    }
}

fn header(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(value).ok()
}

/// Identity headers sent on every outbound request.
pub(crate) fn identity_headers(settings: &InngestSettings) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(USER_AGENT, HeaderValue::from_static(SDK_IDENT));
    h.insert(
        HeaderName::from_static(headers::SDK),
        HeaderValue::from_static(SDK_IDENT),
    );
    h.insert(
        HeaderName::from_static(headers::SDK_HANDLED),
        HeaderValue::from_static("true"),
    );
    h.insert(
        HeaderName::from_static(headers::FRAMEWORK),
        HeaderValue::from_static(FRAMEWORK),
    );
    if let Some(env) = settings.env().and_then(header) {
        h.insert(HeaderName::from_static(headers::ENV), env);
    }
    if let Some(platform) = settings.platform().and_then(header) {
        h.insert(HeaderName::from_static(headers::PLATFORM), platform);
    }
    h
}

/// Sends events to Inngest.
#[derive(Clone, Debug)]
pub struct EventClient {
    settings: Arc<InngestSettings>,
    http: LazyHttp,
    base_delay: Duration,
}

impl EventClient {
    /// A client for the event API the settings point to (dev server or Inngest Cloud).
    pub fn new(settings: &InngestSettings) -> Self {
        Self::with_http(settings, LazyHttp::default())
    }

    /// Sends through `http`, shared with other callers.
    pub(crate) fn with_http(settings: &InngestSettings, http: LazyHttp) -> Self {
        Self {
            settings: Arc::new(settings.clone()),
            http,
            base_delay: SEND_BASE_DELAY,
        }
    }

    /// Shortens the retry backoff (tests).
    pub fn with_base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sends one event and returns its id.
    pub async fn send_one(&self, event: Event) -> Result<String, SendError> {
        let ids = self.send(std::slice::from_ref(&event)).await?;
        ids.into_iter().next().ok_or_else(|| SendError::Status {
            status: 200,
            message: "no id returned".to_owned(),
        })
    }

    /// Sends events in one request and returns their ids, in order. Transport errors, 429 and
    /// 5xx answers are retried with exponential backoff under the same id seed, so the server
    /// derives the same ids for a resend.
    pub async fn send(&self, events: &[Event]) -> Result<Vec<String>, SendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.settings.mode() == Mode::Cloud && self.settings.event_key().is_none() {
            return Err(SendError::MissingEventKey);
        }
        let now_millis = chrono::Utc::now().timestamp_millis();
        let payload: Vec<Value> = events
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_else(|_| json!({}));
                if let Some(o) = v.as_object_mut() {
                    if e.ts.is_none_or(|ts| ts == 0) {
                        o.insert("ts".into(), json!(now_millis));
                    }
                    if e.data.is_null() {
                        o.insert("data".into(), json!({}));
                    }
                }
                v
            })
            .collect();
        let body =
            serde_json::to_vec(&payload).map_err(|e| SendError::BadRequest(e.to_string()))?;
        let url = url::Url::parse(&self.settings.event_api_base_url())
            .and_then(|base| base.join(&format!("e/{}", self.settings.event_key_or_dummy())))
            .map_err(|e| SendError::InvalidUrl(e.to_string()))?;
        let entropy: [u8; 10] = rand::random();
        let seed = format!(
            "{now_millis},{}",
            base64::engine::general_purpose::STANDARD.encode(entropy)
        );
        let mut hdrs = identity_headers(&self.settings);
        if let Some(v) = header(&seed) {
            hdrs.insert(HeaderName::from_static(headers::EVENT_ID_SEED), v);
        }

        let mut attempt = 1;
        loop {
            let result = self.send_once(&url, &hdrs, &body).await;
            match result {
                Err(e) if attempt < SEND_ATTEMPTS && is_transient(&e) => {
                    let jitter = rand::random::<f64>() * self.base_delay.as_secs_f64();
                    let delay = self.base_delay.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
                    tracing::debug!(attempt, error = %e, "retrying event send");
                    tokio::time::sleep(Duration::from_secs_f64(delay + jitter)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        url: &url::Url,
        hdrs: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<String>, SendError> {
        let response = self
            .http
            .get()
            .post(url.as_str())
            .headers(hdrs.clone())
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let reply: Option<SendEventReply> = serde_json::from_str(&text).ok();
        let accepted = status.is_success()
            && reply
                .as_ref()
                .is_some_and(|r| r.status.is_none_or(|s| s == 200) && r.error.is_none());
        if accepted {
            return Ok(reply.map(|r| r.ids).unwrap_or_default());
        }
        let message = reply
            .as_ref()
            .and_then(|r| r.error.clone())
            .unwrap_or_else(|| text.trim().to_owned());
        Err(match status {
            StatusCode::UNAUTHORIZED => SendError::Unauthorized,
            StatusCode::BAD_REQUEST => SendError::BadRequest(message),
            StatusCode::PAYLOAD_TOO_LARGE => SendError::PayloadTooLarge,
            s => SendError::Status {
                status: s.as_u16(),
                message,
            },
        })
    }
}

fn is_transient(error: &SendError) -> bool {
    match error {
        SendError::Transport(_) => true,
        SendError::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// Calls to the Inngest API authenticated with the hashed signing key; on 401/403 the request is
/// repeated once with the hashed fallback key (JS `fetchWithAuthFallback`).
#[derive(Clone, Debug)]
pub(crate) struct ApiClient {
    settings: Arc<InngestSettings>,
    http: LazyHttp,
}

impl ApiClient {
    pub fn new(settings: &InngestSettings, http: LazyHttp) -> Self {
        Self {
            settings: Arc::new(settings.clone()),
            http,
        }
    }

    /// `{api_origin}{path}` with the base URL's own path dropped (JS `new URL(path, base)`).
    pub fn url(&self, absolute_path: &str) -> Result<url::Url, url::ParseError> {
        url::Url::parse(&self.settings.api_base_url())?.join(absolute_path)
    }

    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let keys = [
            self.settings.signing_key().map(|k| k.hashed()),
            self.settings.signing_key_fallback().map(|k| k.hashed()),
        ];
        let with_auth = |token: Option<&String>| {
            let mut req = build(self.http.get()).headers(identity_headers(&self.settings));
            if let Some(token) = token {
                req = req.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            req
        };
        let response = with_auth(keys[0].as_ref()).send().await?;
        let denied = matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        );
        if denied && keys[1].is_some() {
            return with_auth(keys[1].as_ref()).send().await;
        }
        Ok(response)
    }

    /// Fetches the trimmed parts of a large run (`ctx.use_api`): its events and its step state.
    pub async fn run_payload(&self, run_id: &str) -> Result<(Value, Value), String> {
        let mut parts = Vec::with_capacity(2);
        for what in ["batch", "actions"] {
            let url = self
                .url(&format!("/v0/runs/{run_id}/{what}"))
                .map_err(|e| e.to_string())?;
            let response = self
                .send(|http| http.get(url.as_str()))
                .await
                .map_err(|e| format!("failed to fetch run {what}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("failed to fetch run {what}: {}", response.status()));
            }
            let value: Value = response
                .json()
                .await
                .map_err(|e| format!("failed to decode run {what}: {e}"))?;
            parts.push(value);
        }
        let actions = parts.pop().unwrap_or(Value::Null);
        let batch = parts.pop().unwrap_or(Value::Null);
        Ok((batch, actions))
    }
}
