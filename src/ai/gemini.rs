//! Gemini through its native REST API (`v1beta/models/{model}:generateContent`), with
//! schema-constrained JSON output. The API key travels only in the `x-goog-api-key` header.

use std::fmt;

use serde::Deserialize;
use serde_json::{Value, json};

use super::provider::{Connection, Reply, WireFormat};
use super::retry::RetryPolicy;
use super::{AiError, TicketText, TokenUsage};
use super::{prompt, schema};
use crate::domain::triage::TriageSource;

/// Output budget of the first attempt. Thinking tokens count against it, so it is generous.
pub const MAX_OUTPUT_TOKENS: u32 = 2048;
/// Output budget after a truncated (`MAX_TOKENS`) answer.
pub const MAX_OUTPUT_TOKENS_RETRY: u32 = 4096;

pub struct GeminiProvider {
    conn: Connection,
    api_key: String,
    base_url: String,
}

impl fmt::Debug for GeminiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiProvider")
            .field("api_key", &"***")
            .field("model", &self.conn.model)
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl GeminiProvider {
    /// `model` is a bare id (`gemini-3.5-flash-lite`; a `models/` prefix is stripped);
    /// `base_url` is the API origin, e.g. `https://generativelanguage.googleapis.com`.
    pub fn new(
        http: reqwest::Client,
        api_key: impl Into<String>,
        model: impl Into<String>,
        base_url: impl Into<String>,
    ) -> Self {
        let model: String = model.into();
        let model = model.trim().trim_start_matches("models/").to_string();
        GeminiProvider {
            conn: Connection::new(http, model),
            api_key: api_key.into(),
            base_url: base_url.into().trim().trim_end_matches('/').to_string(),
        }
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.conn.policy = policy;
        self
    }

    pub fn model(&self) -> &str {
        &self.conn.model
    }
}

impl WireFormat for GeminiProvider {
    const NAME: &'static str = "gemini";
    const SOURCE: TriageSource = TriageSource::Gemini;

    fn connection(&self) -> &Connection {
        &self.conn
    }

    fn url(&self) -> Result<String, AiError> {
        let valid = !self.conn.model.is_empty()
            && self
                .conn
                .model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if !valid {
            return Err(AiError::Config(format!(
                "invalid Gemini model id {:?}",
                self.conn.model
            )));
        }
        if self.api_key.trim().is_empty() {
            return Err(AiError::Config("GEMINI_API_KEY is empty".into()));
        }
        Ok(format!(
            "{}/v1beta/models/{}:generateContent",
            self.base_url, self.conn.model
        ))
    }

    /// The request body. After a truncated answer, the retry gets a larger budget and the
    /// lowest thinking level.
    fn request_body(&self, input: &TicketText, after_bad_output: bool) -> Value {
        let mut generation = json!({
            "responseMimeType": "application/json",
            "responseJsonSchema": schema::triage_schema(),
            "maxOutputTokens": if after_bad_output { MAX_OUTPUT_TOKENS_RETRY } else { MAX_OUTPUT_TOKENS },
        });
        if uses_thinking_level(&self.conn.model) {
            generation["thinkingConfig"] =
                json!({ "thinkingLevel": if after_bad_output { "MINIMAL" } else { "LOW" } });
        }
        // Tickets quote abuse and describe attacks; block only what is clearly harmful.
        let safety: Vec<Value> = [
            "HARM_CATEGORY_HARASSMENT",
            "HARM_CATEGORY_HATE_SPEECH",
            "HARM_CATEGORY_SEXUALLY_EXPLICIT",
            "HARM_CATEGORY_DANGEROUS_CONTENT",
        ]
        .iter()
        .map(|c| json!({ "category": c, "threshold": "BLOCK_ONLY_HIGH" }))
        .collect();
        json!({
            "systemInstruction": { "parts": [ { "text": prompt::system_prompt() } ] },
            "contents": [ { "role": "user", "parts": [ { "text": prompt::user_message(input) } ] } ],
            "generationConfig": generation,
            "safetySettings": safety,
        })
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header("x-goog-api-key", &self.api_key)
    }

    fn parse_reply(&self, body: &str) -> Result<Reply, AiError> {
        let parsed: GenerateContentResponse = serde_json::from_str(body).map_err(|e| {
            AiError::BadOutput(format!("Gemini response is not the expected JSON: {e}"))
        })?;
        Ok(Reply {
            text: extract_text(&parsed)?,
            usage: parsed.usage_metadata.as_ref().map(UsageMetadata::to_usage),
            model: parsed.model_version,
        })
    }
}

/// Gemini 3 takes `thinkingLevel`; older families reject it (and 2.5 uses `thinkingBudget`),
/// so the setting is left to the model's default there.
fn uses_thinking_level(model: &str) -> bool {
    let Some(rest) = model.strip_prefix("gemini-") else {
        return false;
    };
    match rest
        .split(['.', '-'])
        .next()
        .and_then(|m| m.parse::<u32>().ok())
    {
        Some(major) => major >= 3,
        // Moving aliases such as gemini-flash-latest point at current (3.x) models.
        None => rest.ends_with("latest"),
    }
}

/// The answer text, or why there is none (the extraction rules of the API reference).
fn extract_text(resp: &GenerateContentResponse) -> Result<String, AiError> {
    if let Some(reason) = resp
        .prompt_feedback
        .as_ref()
        .and_then(|f| f.block_reason.as_deref())
    {
        return Err(AiError::Blocked(format!("prompt blocked ({reason})")));
    }
    let Some(candidate) = resp.candidates.first() else {
        return Err(AiError::Blocked("no candidates returned".into()));
    };
    let text: String = candidate
        .content
        .iter()
        .flat_map(|c| c.parts.iter())
        .filter(|p| !p.thought)
        .filter_map(|p| p.text.as_deref())
        .collect();
    let finish = candidate.finish_reason.as_deref().unwrap_or("");
    match finish {
        "SAFETY"
        | "PROHIBITED_CONTENT"
        | "BLOCKLIST"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT" => Err(AiError::Blocked(format!(
            "answer blocked (finishReason {finish})"
        ))),
        "MAX_TOKENS" => Err(AiError::BadOutput(
            "answer truncated (finishReason MAX_TOKENS)".into(),
        )),
        "RECITATION"
        | "LANGUAGE"
        | "OTHER"
        | "MALFORMED_FUNCTION_CALL"
        | "UNEXPECTED_TOOL_CALL" => Err(AiError::BadOutput(format!(
            "no usable answer (finishReason {finish})"
        ))),
        _ if text.trim().is_empty() => Err(AiError::BadOutput(format!(
            "empty answer (finishReason {})",
            if finish.is_empty() { "missing" } else { finish }
        ))),
        _ => Ok(text),
    }
}

// Response wire types: lenient (every field optional, unknown fields ignored), because the API
// keeps adding fields.

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GenerateContentResponse {
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Content {
    parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Part {
    text: Option<String>,
    thought: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct UsageMetadata {
    prompt_token_count: u32,
    candidates_token_count: u32,
    thoughts_token_count: u32,
    total_token_count: u32,
}

impl UsageMetadata {
    fn to_usage(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.prompt_token_count,
            output_tokens: self.candidates_token_count,
            thinking_tokens: self.thoughts_token_count,
            total_tokens: self.total_token_count.max(
                self.prompt_token_count + self.candidates_token_count + self.thoughts_token_count,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(v: Value) -> GenerateContentResponse {
        serde_json::from_value(v).unwrap()
    }

    fn provider(model: &str) -> GeminiProvider {
        GeminiProvider::new(
            crate::ai::http_client().unwrap(),
            "k",
            model,
            "http://127.0.0.1:9/",
        )
    }

    #[test]
    fn endpoint_and_model_validation() {
        assert_eq!(
            provider("models/gemini-3.5-flash-lite").url().unwrap(),
            "http://127.0.0.1:9/v1beta/models/gemini-3.5-flash-lite:generateContent"
        );
        assert!(matches!(
            provider("../x?key=1").url(),
            Err(AiError::Config(_))
        ));
        assert!(matches!(provider("").url(), Err(AiError::Config(_))));
        let p = GeminiProvider::new(
            crate::ai::http_client().unwrap(),
            " ",
            "gemini-3.5-flash",
            "http://x",
        );
        assert!(matches!(p.url(), Err(AiError::Config(_))));
    }

    #[test]
    fn request_body_shape() {
        let p = provider("gemini-3.5-flash-lite");
        let b = p.request_body(&TicketText::new("t", "d"), false);
        let g = &b["generationConfig"];
        assert_eq!(g["responseMimeType"], "application/json");
        assert_eq!(g["responseJsonSchema"], schema::triage_schema());
        assert!(g.get("responseSchema").is_none());
        assert_eq!(g["maxOutputTokens"], 2048);
        assert_eq!(g["thinkingConfig"]["thinkingLevel"], "LOW");
        assert!(g["thinkingConfig"].get("thinkingBudget").is_none());
        assert_eq!(
            b["systemInstruction"]["parts"][0]["text"],
            prompt::system_prompt()
        );
        assert_eq!(b["contents"][0]["role"], "user");
        assert!(
            b["contents"][0]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .contains("<ticket>")
        );
        assert_eq!(b["safetySettings"].as_array().unwrap().len(), 4);
        let retry = p.request_body(&TicketText::new("t", "d"), true);
        assert_eq!(retry["generationConfig"]["maxOutputTokens"], 4096);
        assert_eq!(
            retry["generationConfig"]["thinkingConfig"]["thinkingLevel"],
            "MINIMAL"
        );
        let old = provider("gemini-2.5-flash-lite").request_body(&TicketText::new("t", "d"), false);
        assert!(old["generationConfig"].get("thinkingConfig").is_none());
    }

    #[test]
    fn thinking_level_support() {
        assert!(uses_thinking_level("gemini-3.5-flash-lite"));
        assert!(uses_thinking_level("gemini-3-pro-preview"));
        assert!(uses_thinking_level("gemini-10.0-ultra"));
        assert!(uses_thinking_level("gemini-flash-latest"));
        assert!(!uses_thinking_level("gemini-2.5-flash"));
        assert!(!uses_thinking_level("gemini-1.5-flash-8b"));
        assert!(!uses_thinking_level("gemma-3-27b-it"));
    }

    #[test]
    fn extraction_rules() {
        let ok = resp(json!({"candidates":[{"content":{"parts":[
            {"text":"thinking...","thought":true},{"text":"{\"a\":"},{"text":"1}"}]},
            "finishReason":"STOP"}]}));
        assert_eq!(extract_text(&ok).unwrap(), "{\"a\":1}");

        let blocked = resp(json!({"promptFeedback":{"blockReason":"SAFETY"}}));
        assert!(matches!(extract_text(&blocked), Err(AiError::Blocked(m)) if m.contains("SAFETY")));
        assert!(matches!(
            extract_text(&resp(json!({}))),
            Err(AiError::Blocked(_))
        ));

        let safety = resp(json!({"candidates":[{"finishReason":"SAFETY"}]}));
        assert!(matches!(extract_text(&safety), Err(AiError::Blocked(_))));
        let truncated = resp(
            json!({"candidates":[{"content":{"parts":[{"text":"{\"summ"}]},"finishReason":"MAX_TOKENS"}]}),
        );
        assert!(
            matches!(extract_text(&truncated), Err(AiError::BadOutput(m)) if m.contains("MAX_TOKENS"))
        );
        let recitation = resp(json!({"candidates":[{"finishReason":"RECITATION"}]}));
        assert!(matches!(
            extract_text(&recitation),
            Err(AiError::BadOutput(_))
        ));
        let empty = resp(json!({"candidates":[{"content":{"parts":[]},"finishReason":"STOP"}]}));
        assert!(matches!(extract_text(&empty), Err(AiError::BadOutput(_))));
    }

    #[test]
    fn usage_includes_thinking() {
        let u = UsageMetadata {
            prompt_token_count: 10,
            candidates_token_count: 5,
            thoughts_token_count: 7,
            total_token_count: 0,
        }
        .to_usage();
        assert_eq!(u.total_tokens, 22);
        assert_eq!(u.thinking_tokens, 7);
    }
}
