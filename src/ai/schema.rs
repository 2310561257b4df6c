//! The JSON schema of a triage answer, in the portable subset every structured-output backend
//! accepts (Gemini `responseJsonSchema`, OpenAI strict mode, Ollama, llama.cpp, vLLM): one
//! object, every property required, `additionalProperties: false`, string enums, no numeric
//! bounds, formats or references. Ranges are enforced by [`Triage::parse`] instead.
//!
//! [`Triage::parse`]: crate::domain::triage::Triage::parse

use serde_json::{Value, json};

use crate::domain::triage::{Category, FIELDS, Priority, Sentiment};

/// Name given to the schema where the API wants one (OpenAI `json_schema.name`).
pub const SCHEMA_NAME: &str = "ticket_triage";

pub fn triage_schema() -> Value {
    let names = |all: &[&'static str]| Value::from(all.to_vec());
    json!({
        "type": "object",
        "properties": {
            "summary": {
                "type": "string",
                "description": "One or two plain-text sentences stating the customer's problem or request."
            },
            "category": {
                "type": "string",
                "enum": names(&Category::ALL.map(Category::as_str)),
                "description": "The kind of request."
            },
            "priority": {
                "type": "string",
                "enum": names(&Priority::ALL.map(Priority::as_str)),
                "description": "How urgently the ticket needs attention."
            },
            "sentiment": {
                "type": "string",
                "enum": names(&Sentiment::ALL.map(Sentiment::as_str)),
                "description": "The customer's tone."
            },
            "required_skills": {
                "type": "array",
                "items": { "type": "string" },
                "description": "1 to 5 skills a support engineer needs, preferably from the listed vocabulary."
            },
            "helpful_notes": {
                "type": "string",
                "description": "Markdown notes for the moderator: likely causes, diagnostic steps, what to ask the customer."
            },
            "confidence": {
                "type": "number",
                "description": "How sure you are of category and priority, from 0 to 1."
            }
        },
        "required": FIELDS,
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_the_portable_subset() {
        let s = triage_schema();
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        let props = s["properties"].as_object().unwrap();
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, FIELDS);
        assert_eq!(props.len(), FIELDS.len());
        for f in FIELDS {
            assert!(props.contains_key(f), "{f}");
        }
        let text = s.to_string();
        for banned in [
            "$ref", "oneOf", "pattern", "format", "minimum", "maximum", "maxItems",
        ] {
            assert!(!text.contains(banned), "{banned}");
        }
        assert_eq!(
            s["properties"]["category"]["enum"],
            json!([
                "bug",
                "feature_request",
                "technical_issue",
                "billing",
                "account",
                "question",
                "other"
            ])
        );
        assert_eq!(
            s["properties"]["priority"]["enum"],
            json!(["low", "medium", "high"])
        );
    }

    #[test]
    fn schema_fields_match_what_parse_requires() {
        // An object with exactly the schema's fields parses.
        let value = json!({
            "summary": "s", "category": "other", "priority": "low", "sentiment": "neutral",
            "required_skills": [], "helpful_notes": "", "confidence": 0.1
        });
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), FIELDS.len());
        assert!(crate::domain::triage::Triage::parse(value).is_ok());
    }
}
