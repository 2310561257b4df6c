//! Any OpenAI-compatible `chat/completions` endpoint (OpenAI, Gemini's compatibility layer,
//! Ollama, vLLM, llama.cpp, LM Studio) with strict JSON-schema output.

use std::fmt;

use serde::Deserialize;
use serde_json::{Value, json};

use super::provider::{Connection, Reply, WireFormat};
use super::retry::RetryPolicy;
use super::{AiError, TicketText, TokenUsage};
use super::{prompt, schema};
use crate::domain::triage::TriageSource;

/// Output budget of the first attempt (reasoning models spend part of it thinking).
pub const MAX_TOKENS: u32 = 2048;
/// Output budget after a truncated answer.
pub const MAX_TOKENS_RETRY: u32 = 4096;

pub struct OpenAiProvider {
    conn: Connection,
    base_url: String,
    api_key: Option<String>,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.conn.model)
            .finish()
    }
}

impl OpenAiProvider {
    /// `base_url` is the API base, e.g. `http://localhost:11434/v1` or
    /// `https://generativelanguage.googleapis.com/v1beta/openai`; `/chat/completions` is
    /// appended unless already there. No key means no `Authorization` header (local servers).
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        api_key: Option<String>,
        model: impl Into<String>,
    ) -> Self {
        OpenAiProvider {
            conn: Connection::new(http, model.into().trim().to_string()),
            base_url: base_url.into().trim().trim_end_matches('/').to_string(),
            api_key: api_key.filter(|k| !k.trim().is_empty()),
        }
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.conn.policy = policy;
        self
    }
}

impl WireFormat for OpenAiProvider {
    const NAME: &'static str = "openai";
    const SOURCE: TriageSource = TriageSource::OpenAi;

    fn connection(&self) -> &Connection {
        &self.conn
    }

    fn url(&self) -> Result<String, AiError> {
        if self.conn.model.is_empty() {
            return Err(AiError::Config("AI_MODEL is not set".into()));
        }
        let parsed = url::Url::parse(&self.base_url).map_err(|e| {
            AiError::Config(format!("invalid AI_BASE_URL {:?}: {e}", self.base_url))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AiError::Config(format!(
                "AI_BASE_URL must be http(s), got {:?}",
                parsed.scheme()
            )));
        }
        if self.base_url.ends_with("/chat/completions") {
            Ok(self.base_url.clone())
        } else {
            Ok(format!("{}/chat/completions", self.base_url))
        }
    }

    fn request_body(&self, input: &TicketText, after_bad_output: bool) -> Value {
        json!({
            "model": self.conn.model,
            "messages": [
                { "role": "system", "content": prompt::system_prompt() },
                { "role": "user", "content": prompt::user_message(input) },
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": schema::SCHEMA_NAME,
                    "strict": true,
                    "schema": schema::triage_schema(),
                },
            },
            "max_tokens": if after_bad_output { MAX_TOKENS_RETRY } else { MAX_TOKENS },
        })
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    fn parse_reply(&self, body: &str) -> Result<Reply, AiError> {
        let parsed: ChatResponse = serde_json::from_str(body).map_err(|e| {
            AiError::BadOutput(format!("chat completion is not the expected JSON: {e}"))
        })?;
        Ok(Reply {
            text: extract_text(&parsed)?,
            usage: parsed.usage.as_ref().map(Usage::to_usage),
            model: parsed.model,
        })
    }
}

fn extract_text(resp: &ChatResponse) -> Result<String, AiError> {
    let Some(choice) = resp.choices.first() else {
        return Err(AiError::BadOutput("no choices returned".into()));
    };
    let message = choice.message.as_ref();
    if let Some(refusal) = message
        .and_then(|m| m.refusal.as_deref())
        .filter(|r| !r.is_empty())
    {
        return Err(AiError::Blocked(format!(
            "model refused: {}",
            crate::domain::triage::clamp_chars(refusal, 200)
        )));
    }
    match choice.finish_reason.as_deref() {
        Some("content_filter") => {
            return Err(AiError::Blocked("answer blocked (content_filter)".into()));
        }
        Some("length") => {
            return Err(AiError::BadOutput(
                "answer truncated (finish_reason length)".into(),
            ));
        }
        _ => {}
    }
    match message.and_then(|m| m.content.as_ref()) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        // Content-part arrays (some servers): concatenate their text.
        Some(Value::Array(parts)) => {
            let text: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            if text.trim().is_empty() {
                Err(AiError::BadOutput("empty answer".into()))
            } else {
                Ok(text)
            }
        }
        _ => Err(AiError::BadOutput("empty answer".into())),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatResponse {
    choices: Vec<Choice>,
    usage: Option<Usage>,
    model: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Choice {
    message: Option<Message>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Message {
    content: Option<Value>,
    refusal: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CompletionDetails {
    reasoning_tokens: u32,
}

impl Usage {
    fn to_usage(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            thinking_tokens: self
                .completion_tokens_details
                .as_ref()
                .map_or(0, |d| d.reasoning_tokens),
            total_tokens: self
                .total_tokens
                .max(self.prompt_tokens + self.completion_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(base: &str) -> OpenAiProvider {
        OpenAiProvider::new(crate::ai::http_client().unwrap(), base, None, "llama3.2")
    }

    #[test]
    fn endpoint_building() {
        assert_eq!(
            provider("http://localhost:11434/v1/").url().unwrap(),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(
            provider("https://x/v1/chat/completions").url().unwrap(),
            "https://x/v1/chat/completions"
        );
        assert!(matches!(
            provider("not a url").url(),
            Err(AiError::Config(_))
        ));
        assert!(matches!(provider("ftp://x").url(), Err(AiError::Config(_))));
        let p = OpenAiProvider::new(crate::ai::http_client().unwrap(), "http://x", None, " ");
        assert!(matches!(p.url(), Err(AiError::Config(_))));
    }

    #[test]
    fn request_body_shape() {
        let b = provider("http://x").request_body(&TicketText::new("t", "d"), false);
        assert_eq!(b["model"], "llama3.2");
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(b["response_format"]["json_schema"]["strict"], true);
        assert_eq!(b["response_format"]["json_schema"]["name"], "ticket_triage");
        assert_eq!(
            b["response_format"]["json_schema"]["schema"],
            schema::triage_schema()
        );
        assert_eq!(b["messages"][0]["role"], "system");
        assert!(
            b["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("<ticket>")
        );
        assert_eq!(b["max_tokens"], 2048);
    }

    #[test]
    fn blank_key_means_no_key() {
        let p = OpenAiProvider::new(
            crate::ai::http_client().unwrap(),
            "http://x",
            Some("  ".into()),
            "m",
        );
        assert!(p.api_key.is_none());
        assert!(
            !format!(
                "{:?}",
                OpenAiProvider::new(
                    crate::ai::http_client().unwrap(),
                    "http://x",
                    Some("sk-SECRET".into()),
                    "m"
                )
            )
            .contains("SECRET")
        );
    }

    #[test]
    fn extraction_rules() {
        let r = |v: Value| -> ChatResponse { serde_json::from_value(v).unwrap() };
        let ok = r(
            json!({"choices":[{"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}]}),
        );
        assert_eq!(extract_text(&ok).unwrap(), "{}");
        let parts = r(
            json!({"choices":[{"message":{"content":[{"type":"text","text":"{\"a\""},{"type":"text","text":":1}"}]}}]}),
        );
        assert_eq!(extract_text(&parts).unwrap(), "{\"a\":1}");
        let refused = r(json!({"choices":[{"message":{"content":null,"refusal":"I can't help"}}]}));
        assert!(matches!(extract_text(&refused), Err(AiError::Blocked(_))));
        let filtered =
            r(json!({"choices":[{"message":{"content":""},"finish_reason":"content_filter"}]}));
        assert!(matches!(extract_text(&filtered), Err(AiError::Blocked(_))));
        let length =
            r(json!({"choices":[{"message":{"content":"{\"su"},"finish_reason":"length"}]}));
        assert!(matches!(extract_text(&length), Err(AiError::BadOutput(_))));
        assert!(matches!(
            extract_text(&r(json!({"choices":[]}))),
            Err(AiError::BadOutput(_))
        ));
    }
}
