//! A minimal Gemini stand-in on 127.0.0.1: every `generateContent` call gets a valid triage
//! answer after a fixed delay, so the AI's latency is the only thing that changes.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::json;

use crate::served::Served;

pub const KEY: &str = "bench-gemini-key";

pub struct FakeGemini {
    pub base_url: String,
    _server: Served,
}

impl FakeGemini {
    pub async fn start(delay: Duration) -> FakeGemini {
        let app = Router::new().fallback(answer).with_state(delay);
        let server = Served::start(app).await;
        FakeGemini {
            base_url: server.url(),
            _server: server,
        }
    }
}

async fn answer(State(delay): State<Duration>) -> impl IntoResponse {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let triage = json!({
        "summary": "The customer cannot sign in since this morning.",
        "category": "account",
        "priority": "high",
        "sentiment": "frustrated",
        "required_skills": ["Authentication"],
        "helpful_notes": "Check the login logs for this account.",
        "confidence": 0.9
    });
    axum::Json(json!({
        "candidates": [{
            "content": {"role": "model", "parts": [{"text": triage.to_string()}]},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 800, "candidatesTokenCount": 90, "totalTokenCount": 890},
        "modelVersion": "gemini-3.5-flash-lite"
    }))
}
