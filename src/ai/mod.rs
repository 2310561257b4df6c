//! Ticket triage providers: Gemini, any OpenAI-compatible endpoint, and the built-in rules
//! engine, which is both the default without an API key and the fallback when a model fails.
//!
//! A durable step typically calls [`triage_with_fallback`] and maps the [`TriageDecision`]:
//! `Done` -> triage status `done`; `Fallback` -> status `fallback`; `RetryLater` -> step
//! `RetryAfter(retry_after)` (with [`OnRateLimit::Fallback`] on the last attempt so the ticket is
//! never left untriaged).

mod errors;
pub mod gemini;
pub mod openai;
pub mod prompt;
mod provider;
pub mod retry;
pub mod rules;
pub mod schema;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::domain::triage::{Triage, TriageSource};
pub use gemini::GeminiProvider;
pub use openai::OpenAiProvider;
pub use retry::RetryPolicy;
pub use rules::RulesEngine;

/// The ticket text a provider sees. Both fields are customer input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketText {
    pub title: String,
    pub description: String,
}

impl TicketText {
    pub fn new(title: impl Into<String>, description: impl Into<String>) -> Self {
        TicketText {
            title: title.into(),
            description: description.into(),
        }
    }
}

/// Token counts reported by a model. `thinking_tokens` are included in `total_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub thinking_tokens: u32,
    pub total_tokens: u32,
}

/// A successful triage plus where it came from. Small and serializable, so a durable step can
/// return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriageOutcome {
    pub triage: Triage,
    pub source: TriageSource,
    /// Model id as reported by the provider (`rules` for the rules engine).
    pub model: String,
    pub usage: Option<TokenUsage>,
    /// Wall time of the whole call, retries included.
    pub latency_ms: u64,
    /// HTTP attempts made (1 for the rules engine).
    pub attempts: u32,
}

/// Why a provider produced no triage.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AiError {
    /// Invalid or missing key, unknown or retired model, exhausted daily quota, rejected request:
    /// retrying will not help until an operator acts.
    #[error("AI provider misconfigured: {0}")]
    Config(String),
    /// Too many requests; `retry_after` is the provider's hint when it gave one.
    #[error("AI provider rate limited{}: {message}", fmt_retry_after(*.retry_after))]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 5xx, timeouts, connection failures: still failing after the in-call retries.
    #[error("AI provider unavailable: {0}")]
    Transient(String),
    /// The provider refused the content (safety filters).
    #[error("AI provider blocked the ticket: {0}")]
    Blocked(String),
    /// The provider answered, but not with a usable triage.
    #[error("AI provider returned unusable output: {0}")]
    BadOutput(String),
}

fn fmt_retry_after(d: Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {:.1}s)", d.as_secs_f64()))
        .unwrap_or_default()
}

impl AiError {
    /// Short machine name: `config`, `rate_limited`, `transient`, `blocked`, `bad_output`.
    pub fn kind(&self) -> &'static str {
        match self {
            AiError::Config(_) => "config",
            AiError::RateLimited { .. } => "rate_limited",
            AiError::Transient(_) => "transient",
            AiError::Blocked(_) => "blocked",
            AiError::BadOutput(_) => "bad_output",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AiError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Something that can triage a ticket.
#[async_trait::async_trait]
pub trait TriageProvider: Send + Sync {
    /// `gemini`, `openai` or `rules`.
    fn name(&self) -> &'static str;
    async fn triage(&self, input: &TicketText) -> Result<TriageOutcome, AiError>;
}

/// What [`triage_with_fallback`] does when the primary provider is rate limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRateLimit {
    /// Report it, so the durable step can retry later.
    Defer,
    /// Use the rules engine now (e.g. on the step's last attempt).
    Fallback,
}

/// The result of [`triage_with_fallback`].
#[derive(Debug, Clone, PartialEq)]
pub enum TriageDecision {
    /// The primary provider triaged the ticket.
    Done(TriageOutcome),
    /// The primary provider failed with `cause`; the rules engine triaged the ticket.
    Fallback {
        outcome: TriageOutcome,
        cause: AiError,
    },
    /// The primary provider is rate limited; try again after `retry_after` (if known).
    RetryLater {
        retry_after: Option<Duration>,
        cause: AiError,
    },
}

/// Triages with `primary`; on failure uses the rules engine, except that a rate limit is
/// reported as [`TriageDecision::RetryLater`] when `on_rate_limit` is [`OnRateLimit::Defer`].
/// Configuration errors are logged at error level: they need an operator.
pub async fn triage_with_fallback(
    primary: &dyn TriageProvider,
    rules: &RulesEngine,
    input: &TicketText,
    on_rate_limit: OnRateLimit,
) -> TriageDecision {
    let cause = match primary.triage(input).await {
        Ok(outcome) => return TriageDecision::Done(outcome),
        Err(err) => err,
    };
    let provider = primary.name();
    match &cause {
        AiError::RateLimited { retry_after, .. } if on_rate_limit == OnRateLimit::Defer => {
            tracing::warn!(provider, error = %cause, "triage rate limited; deferring");
            return TriageDecision::RetryLater {
                retry_after: *retry_after,
                cause,
            };
        }
        AiError::Config(_) => {
            tracing::error!(provider, error = %cause,
                "AI triage provider is misconfigured; using the rules engine until it is fixed");
        }
        _ => {
            tracing::warn!(provider, error = %cause, kind = cause.kind(),
                "AI triage failed; using the rules engine");
        }
    }
    TriageDecision::Fallback {
        outcome: rules.triage_outcome(input),
        cause,
    }
}

/// Which triage provider to use; filled from the environment by the configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum ProviderSettings {
    Gemini {
        api_key: String,
        model: String,
        base_url: String,
    },
    OpenAi {
        base_url: String,
        api_key: Option<String>,
        model: String,
    },
    Rules,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderSettings::Gemini {
                model, base_url, ..
            } => f
                .debug_struct("Gemini")
                .field("api_key", &"***")
                .field("model", model)
                .field("base_url", base_url)
                .finish(),
            ProviderSettings::OpenAi {
                base_url,
                api_key,
                model,
            } => f
                .debug_struct("OpenAi")
                .field("base_url", base_url)
                .field("api_key", &api_key.as_ref().map(|_| "***"))
                .field("model", model)
                .finish(),
            ProviderSettings::Rules => f.write_str("Rules"),
        }
    }
}

impl ProviderSettings {
    /// A current, cheap Flash-Lite model (default thinking level: minimal).
    pub const DEFAULT_GEMINI_MODEL: &'static str = "gemini-3.5-flash-lite";
    pub const DEFAULT_GEMINI_BASE_URL: &'static str = "https://generativelanguage.googleapis.com";

    /// Gemini with the default model and endpoint.
    pub fn gemini(api_key: impl Into<String>) -> Self {
        ProviderSettings::Gemini {
            api_key: api_key.into(),
            model: Self::DEFAULT_GEMINI_MODEL.to_string(),
            base_url: Self::DEFAULT_GEMINI_BASE_URL.to_string(),
        }
    }

    pub fn source(&self) -> TriageSource {
        match self {
            ProviderSettings::Gemini { .. } => TriageSource::Gemini,
            ProviderSettings::OpenAi { .. } => TriageSource::OpenAi,
            ProviderSettings::Rules => TriageSource::Rules,
        }
    }

    /// Builds the provider with the default retry policy.
    pub fn build(&self, http: reqwest::Client) -> Arc<dyn TriageProvider> {
        self.build_with_policy(http, RetryPolicy::default())
    }

    /// Builds the provider with an explicit retry policy (tests use short delays).
    pub fn build_with_policy(
        &self,
        http: reqwest::Client,
        policy: RetryPolicy,
    ) -> Arc<dyn TriageProvider> {
        match self {
            ProviderSettings::Gemini {
                api_key,
                model,
                base_url,
            } => Arc::new(
                GeminiProvider::new(http, api_key.clone(), model.clone(), base_url.clone())
                    .with_retry_policy(policy),
            ),
            ProviderSettings::OpenAi {
                base_url,
                api_key,
                model,
            } => Arc::new(
                OpenAiProvider::new(http, base_url.clone(), api_key.clone(), model.clone())
                    .with_retry_policy(policy),
            ),
            ProviderSettings::Rules => Arc::new(RulesEngine::new()),
        }
    }
}

/// An HTTP client suitable for the providers: rustls with the ring provider, a connect timeout,
/// and an overall ceiling above the per-attempt timeouts of [`RetryPolicy`].
pub fn http_client() -> Result<reqwest::Client, AiError> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("ticketing/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AiError::Config(format!("cannot build HTTP client: {e}")))
}

/// Turns a model's text answer into a validated triage: tolerant of code fences and stray prose
/// around the JSON object, strict about its content.
pub(crate) fn parse_model_text(text: &str) -> Result<Triage, AiError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AiError::BadOutput("empty response text".into()));
    }
    let value = serde_json::from_str::<serde_json::Value>(trimmed)
        .ok()
        .or_else(|| {
            let start = trimmed.find('{')?;
            let end = trimmed.rfind('}')?;
            (start < end)
                .then(|| serde_json::from_str(&trimmed[start..=end]).ok())
                .flatten()
        })
        .ok_or_else(|| {
            AiError::BadOutput(format!(
                "response is not JSON: {:?}",
                crate::domain::triage::clamp_chars(trimmed, 80)
            ))
        })?;
    Triage::parse(value).map_err(|e| AiError::BadOutput(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::triage::Category;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Scripted {
        result: Result<TriageOutcome, AiError>,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl TriageProvider for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        async fn triage(&self, _input: &TicketText) -> Result<TriageOutcome, AiError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.result.clone()
        }
    }

    fn scripted(result: Result<TriageOutcome, AiError>) -> Scripted {
        Scripted {
            result,
            calls: AtomicU32::new(0),
        }
    }

    fn input() -> TicketText {
        TicketText::new(
            "Charged twice for my subscription",
            "My credit card was charged twice this month. Please refund one payment.",
        )
    }

    #[tokio::test]
    async fn success_is_done() {
        let rules = RulesEngine::new();
        let mut ok = rules.triage_outcome(&input());
        ok.source = TriageSource::Gemini;
        ok.model = "m".into();
        let p = scripted(Ok(ok.clone()));
        let d = triage_with_fallback(&p, &rules, &input(), OnRateLimit::Defer).await;
        assert_eq!(d, TriageDecision::Done(ok));
        assert!(!matches!(d, TriageDecision::Fallback { .. }));
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_fall_back_to_rules() {
        let rules = RulesEngine::new();
        for err in [
            AiError::Config("bad key".into()),
            AiError::Transient("503".into()),
            AiError::Blocked("SAFETY".into()),
            AiError::BadOutput("not json".into()),
        ] {
            let p = scripted(Err(err.clone()));
            let d = triage_with_fallback(&p, &rules, &input(), OnRateLimit::Defer).await;
            let TriageDecision::Fallback { outcome, cause } = &d else {
                panic!("expected fallback for {err:?}, got {d:?}");
            };
            assert_eq!(cause, &err);
            assert_eq!(outcome.source, TriageSource::Rules);
            assert_eq!(outcome.triage.category, Category::Billing);
        }
    }

    #[tokio::test]
    async fn rate_limit_defers_or_falls_back() {
        let rules = RulesEngine::new();
        let err = AiError::RateLimited {
            retry_after: Some(Duration::from_secs(26)),
            message: "quota".into(),
        };
        let p = scripted(Err(err.clone()));
        let d = triage_with_fallback(&p, &rules, &input(), OnRateLimit::Defer).await;
        assert_eq!(
            d,
            TriageDecision::RetryLater {
                retry_after: Some(Duration::from_secs(26)),
                cause: err.clone()
            }
        );
        let d = triage_with_fallback(&p, &rules, &input(), OnRateLimit::Fallback).await;
        let TriageDecision::Fallback { outcome, .. } = &d else {
            panic!("expected fallback, got {d:?}");
        };
        assert_eq!(outcome.source, TriageSource::Rules);
    }

    #[test]
    fn model_text_parsing() {
        let json = r#"{"summary":"s","category":"bug","priority":"low","sentiment":"neutral",
            "required_skills":[],"helpful_notes":"n","confidence":0.5}"#;
        assert!(parse_model_text(json).is_ok());
        assert!(parse_model_text(&format!("```json\n{json}\n```")).is_ok());
        assert!(parse_model_text(&format!("Here you go: {json} Hope it helps")).is_ok());
        assert!(matches!(parse_model_text(""), Err(AiError::BadOutput(_))));
        assert!(matches!(
            parse_model_text("{not json"),
            Err(AiError::BadOutput(_))
        ));
        assert!(matches!(
            parse_model_text(r#"{"summary":"s"}"#),
            Err(AiError::BadOutput(m)) if m.contains("missing")
        ));
    }

    #[test]
    fn settings_debug_hides_keys() {
        let s = ProviderSettings::gemini("AIzaSECRET");
        assert!(!format!("{s:?}").contains("SECRET"));
        let s = ProviderSettings::OpenAi {
            base_url: "http://x".into(),
            api_key: Some("sk-SECRET".into()),
            model: "m".into(),
        };
        assert!(!format!("{s:?}").contains("SECRET"));
    }

    #[test]
    fn error_display_and_kind() {
        let e = AiError::RateLimited {
            retry_after: Some(Duration::from_millis(1500)),
            message: "slow down".into(),
        };
        assert_eq!(
            e.to_string(),
            "AI provider rate limited (retry after 1.5s): slow down"
        );
        assert_eq!(e.kind(), "rate_limited");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(AiError::Config("x".into()).retry_after(), None);
    }
}
