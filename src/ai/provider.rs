//! What every model provider over HTTP does the same way: one triage is a series of attempts
//! under a [`RetryPolicy`] (see [`retry::run`]), each attempt one POST whose failures are
//! classified as transient, rate-limited or final, and whose answer text becomes a [`Triage`].
//! A provider supplies only its wire format through [`WireFormat`].

use std::time::Instant;

use serde_json::Value;

use super::errors::{classify_status, classify_transport};
use super::retry::{self, AttemptCtx, RetryPolicy};
use super::{AiError, TicketText, TokenUsage, TriageOutcome, TriageProvider, parse_model_text};
use crate::domain::triage::{Triage, TriageSource};

/// What a provider's answer carried, before the text is read as a triage.
pub(crate) struct Reply {
    /// The model's answer, expected to be the triage JSON.
    pub text: String,
    pub usage: Option<TokenUsage>,
    /// The model id the server reports, when it does.
    pub model: Option<String>,
}

/// What every provider holds whatever its wire format: the client, the model and the retries.
pub(crate) struct Connection {
    pub http: reqwest::Client,
    /// The configured model id, reported when the server does not name one.
    pub model: String,
    pub policy: RetryPolicy,
}

impl Connection {
    pub fn new(http: reqwest::Client, model: String) -> Self {
        Connection {
            http,
            model,
            policy: RetryPolicy::default(),
        }
    }
}

/// One provider's wire format and settings.
pub(crate) trait WireFormat: Send + Sync {
    /// Names the provider in logs and errors.
    const NAME: &'static str;
    /// Recorded on the outcome.
    const SOURCE: TriageSource;

    fn connection(&self) -> &Connection;
    /// The URL to POST to, or why the settings cannot work.
    fn url(&self) -> Result<String, AiError>;
    /// The request body. `after_bad_output`: the previous answer was unusable (e.g. truncated).
    fn request_body(&self, input: &TicketText, after_bad_output: bool) -> Value;
    /// Adds the credentials, if any.
    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder;
    /// Reads a successful (2xx) response body.
    fn parse_reply(&self, body: &str) -> Result<Reply, AiError>;
}

#[async_trait::async_trait]
impl<W: WireFormat> TriageProvider for W {
    fn name(&self) -> &'static str {
        W::NAME
    }

    async fn triage(&self, input: &TicketText) -> Result<TriageOutcome, AiError> {
        triage(self, input).await
    }
}

/// Triage `input` with `wire`: attempts, retries and the outcome.
async fn triage<W: WireFormat>(wire: &W, input: &TicketText) -> Result<TriageOutcome, AiError> {
    let url = wire.url()?;
    let started = Instant::now();
    let (result, attempts) = retry::run(&wire.connection().policy, W::NAME, |ctx| {
        attempt(wire, &url, input, ctx)
    })
    .await;
    let (triage, usage, model) = result?;
    Ok(TriageOutcome {
        triage,
        source: W::SOURCE,
        model: model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| wire.connection().model.clone()),
        usage,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        attempts,
    })
}

async fn attempt<W: WireFormat>(
    wire: &W,
    url: &str,
    input: &TicketText,
    ctx: AttemptCtx,
) -> Result<(Triage, Option<TokenUsage>, Option<String>), AiError> {
    tracing::debug!(
        attempt = ctx.attempt,
        model = %wire.connection().model,
        "{} triage request",
        W::NAME
    );
    let request = wire
        .connection()
        .http
        .post(url)
        .timeout(ctx.timeout)
        .json(&wire.request_body(input, ctx.after_bad_output));
    let response = wire
        .authorize(request)
        .send()
        .await
        .map_err(|e| classify_transport(W::NAME, &e, ctx.timeout))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(|e| classify_transport(W::NAME, &e, ctx.timeout))?;
    if !status.is_success() {
        return Err(classify_status(W::NAME, status, &headers, &body));
    }
    let reply = wire.parse_reply(&body)?;
    Ok((parse_model_text(&reply.text)?, reply.usage, reply.model))
}
