//! The OpenAI-compatible provider against the fake chat/completions endpoint.

use std::time::Duration;

use ticketing::ai::{AiError, TriageProvider, TriageSource};
use ticketing::domain::triage::{Category, Priority};

use crate::support::fake_openai::{FAKE_OPENAI_MODEL, FakeOpenAi, OpenAiReply};
use crate::support::sample_ticket;

#[tokio::test]
async fn hosted_endpoint_with_bearer_key() {
    let fake = FakeOpenAi::start(Some("sk-test-123")).await;
    let out = fake
        .provider(Some("sk-test-123"), FAKE_OPENAI_MODEL)
        .triage(&sample_ticket())
        .await
        .unwrap();
    assert_eq!(out.source, TriageSource::OpenAi);
    assert_eq!(out.model, FAKE_OPENAI_MODEL);
    assert_eq!(out.usage.unwrap().total_tokens, 760);
    assert_eq!(
        out.triage.summary,
        "Local summary of: Checkout page returns 500 since this morning"
    );
    assert_eq!(out.triage.category, Category::Bug);
    assert_eq!(out.triage.priority, Priority::Medium);
    fake.assert_no_violations();
    let r = &fake.requests()[0];
    assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-123"));
    assert_eq!(r.body["response_format"]["json_schema"]["strict"], true);
}

#[tokio::test]
async fn local_server_without_key_gets_no_authorization_header() {
    let fake = FakeOpenAi::start(None).await;
    let provider = fake
        .settings(None)
        .build(ticketing::ai::http_client().unwrap());
    assert_eq!(provider.name(), "openai");
    provider.triage(&sample_ticket()).await.unwrap();
    fake.assert_no_violations();
    assert_eq!(fake.requests()[0].authorization, None);
}

#[tokio::test]
async fn wrong_key_and_unknown_model_are_configuration_errors() {
    let fake = FakeOpenAi::start(Some("sk-right")).await;
    let err = fake
        .provider(Some("sk-wrong"), FAKE_OPENAI_MODEL)
        .triage(&sample_ticket())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AiError::Config(m) if m.contains("credentials")),
        "{err:?}"
    );
    let err = fake
        .provider(Some("sk-right"), "gpt-nonexistent")
        .triage(&sample_ticket())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AiError::Config(m) if m.contains("not found")),
        "{err:?}"
    );
    assert_eq!(
        fake.requests().len(),
        2,
        "configuration errors are not retried"
    );
}

#[tokio::test]
async fn rate_limit_reports_retry_after_header() {
    let fake = FakeOpenAi::start(None).await;
    fake.enqueue([OpenAiReply::RateLimited {
        retry_after_secs: 30,
    }]);
    let err = fake
        .provider(None, FAKE_OPENAI_MODEL)
        .triage(&sample_ticket())
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn overload_is_retried() {
    let fake = FakeOpenAi::start(None).await;
    fake.enqueue([OpenAiReply::Unavailable]);
    let out = fake
        .provider(None, FAKE_OPENAI_MODEL)
        .triage(&sample_ticket())
        .await
        .unwrap();
    assert_eq!(out.attempts, 2);
}

#[tokio::test]
async fn refusals_and_filters_are_blocked() {
    let fake = FakeOpenAi::start(None).await;
    fake.enqueue([
        OpenAiReply::Refusal("I can't help with that.".into()),
        OpenAiReply::ContentFilter,
    ]);
    let p = fake.provider(None, FAKE_OPENAI_MODEL);
    for _ in 0..2 {
        let err = p.triage(&sample_ticket()).await.unwrap_err();
        assert!(matches!(err, AiError::Blocked(_)), "{err:?}");
    }
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn truncation_and_malformed_output() {
    let fake = FakeOpenAi::start(None).await;
    fake.enqueue([OpenAiReply::Length]);
    let out = fake
        .provider(None, FAKE_OPENAI_MODEL)
        .triage(&sample_ticket())
        .await
        .unwrap();
    assert_eq!(out.attempts, 2);
    let reqs = fake.requests();
    assert_eq!(reqs[0].body["max_tokens"], 2048);
    assert_eq!(reqs[1].body["max_tokens"], 4096);

    fake.enqueue([
        OpenAiReply::Text("```json\n{ nope".into()),
        OpenAiReply::Text("nope".into()),
    ]);
    let err = fake
        .provider(None, FAKE_OPENAI_MODEL)
        .triage(&sample_ticket())
        .await
        .unwrap_err();
    assert!(matches!(err, AiError::BadOutput(_)), "{err:?}");

    // A fenced answer is still accepted.
    fake.enqueue([OpenAiReply::Text(format!(
        "```json\n{}\n```",
        serde_json::json!({
            "summary": "s", "category": "question", "priority": "low", "sentiment": "positive",
            "required_skills": ["Go"], "helpful_notes": "n", "confidence": 0.4
        })
    ))]);
    let out = fake
        .provider(None, FAKE_OPENAI_MODEL)
        .triage(&sample_ticket())
        .await
        .unwrap();
    assert_eq!(out.triage.category, Category::Question);
    assert_eq!(out.triage.required_skills, vec!["Go"]);
    fake.assert_no_violations();
}
