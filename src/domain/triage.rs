//! The validated result of triaging a ticket. Whatever produced it (a model, the rules engine),
//! model output only becomes a [`Triage`] through [`Triage::parse`], which treats it as untrusted
//! input: fields are type-checked, enum values matched loosely but from a closed set, text is
//! cleaned and clamped, skills are normalized against the vocabulary and confidence is clamped.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::skills;

/// Longest stored summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = 300;
/// Longest stored helpful notes, in characters.
pub const MAX_NOTES_CHARS: usize = 4000;

/// What kind of request a ticket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The product behaves incorrectly.
    Bug,
    /// A request for new or changed functionality.
    FeatureRequest,
    /// A technical problem that is not clearly a product defect: outages, performance,
    /// connectivity, setup, integrations.
    TechnicalIssue,
    /// Charges, invoices, refunds, plans.
    Billing,
    /// Access to and management of the customer's account.
    Account,
    /// How-to and general questions.
    Question,
    /// Anything else.
    Other,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Bug,
        Category::FeatureRequest,
        Category::TechnicalIssue,
        Category::Billing,
        Category::Account,
        Category::Question,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Bug => "bug",
            Category::FeatureRequest => "feature_request",
            Category::TechnicalIssue => "technical_issue",
            Category::Billing => "billing",
            Category::Account => "account",
            Category::Question => "question",
            Category::Other => "other",
        }
    }

    /// Human label, e.g. "feature request".
    pub fn label(self) -> &'static str {
        match self {
            Category::FeatureRequest => "feature request",
            Category::TechnicalIssue => "technical issue",
            other => other.as_str(),
        }
    }

    /// Tolerant parse: case-insensitive, any separator ("Feature Request", "feature-request"),
    /// and a few common synonyms ("enhancement", "defect", "payment").
    pub fn parse_loose(raw: &str) -> Option<Category> {
        Some(match fold(raw).as_str() {
            "bug" | "bugs" | "bug_report" | "defect" | "error" | "crash" => Category::Bug,
            "feature_request" | "feature_requests" | "feature" | "enhancement" | "suggestion"
            | "improvement" | "request_feature" => Category::FeatureRequest,
            "technical_issue" | "technical" | "tech_issue" | "technical_problem"
            | "technical_support" | "incident" | "outage" | "performance" => {
                Category::TechnicalIssue
            }
            "billing" | "billing_issue" | "payment" | "payments" | "invoice" | "invoicing" => {
                Category::Billing
            }
            "account" | "account_access" | "account_management" | "account_issue" | "login"
            | "authentication" | "access" => Category::Account,
            "question" | "questions" | "how_to" | "howto" | "inquiry" | "enquiry"
            | "general_question" | "usage_question" => Category::Question,
            "other" | "general" | "misc" | "miscellaneous" | "unknown" | "none" => Category::Other,
            _ => return None,
        })
    }
}

/// How urgently a ticket needs attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Low, Priority::Medium, Priority::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }

    /// Tolerant parse: case-insensitive, with common synonyms ("urgent", "critical", "normal",
    /// "minor", "P1").
    pub fn parse_loose(raw: &str) -> Option<Priority> {
        Some(match fold(raw).as_str() {
            "low" | "minor" | "trivial" | "lowest" | "p3" | "p4" => Priority::Low,
            "medium" | "med" | "normal" | "moderate" | "p2" => Priority::Medium,
            "high" | "highest" | "urgent" | "critical" | "blocker" | "severe" | "p0" | "p1" => {
                Priority::High
            }
            _ => return None,
        })
    }
}

/// The customer's tone.
///
/// `Frustrated` is stronger than `Negative`: an angry or exasperated customer (repeated
/// failures, threats to leave, shouting), which helpdesks treat as an escalation signal.
/// `Negative` is unhappy but calm; `Neutral` is matter-of-fact (politeness alone is neutral);
/// `Positive` is clearly pleased or appreciative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sentiment {
    Frustrated,
    Negative,
    Neutral,
    Positive,
}

impl Sentiment {
    pub const ALL: [Sentiment; 4] = [
        Sentiment::Frustrated,
        Sentiment::Negative,
        Sentiment::Neutral,
        Sentiment::Positive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Frustrated => "frustrated",
            Sentiment::Negative => "negative",
            Sentiment::Neutral => "neutral",
            Sentiment::Positive => "positive",
        }
    }

    /// Tolerant parse: case-insensitive, with common synonyms ("angry", "very negative",
    /// "happy", "mixed").
    pub fn parse_loose(raw: &str) -> Option<Sentiment> {
        Some(match fold(raw).as_str() {
            "frustrated" | "angry" | "furious" | "irate" | "upset" | "very_negative" => {
                Sentiment::Frustrated
            }
            "negative" | "dissatisfied" | "unhappy" | "disappointed" | "concerned" => {
                Sentiment::Negative
            }
            "neutral" | "mixed" | "calm" | "none" => Sentiment::Neutral,
            "positive" | "happy" | "satisfied" | "grateful" | "very_positive" => {
                Sentiment::Positive
            }
            _ => return None,
        })
    }
}

/// Who produced a triage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TriageSource {
    #[serde(rename = "gemini")]
    Gemini,
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "rules")]
    Rules,
}

impl TriageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TriageSource::Gemini => "gemini",
            TriageSource::OpenAi => "openai",
            TriageSource::Rules => "rules",
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(Category, Priority, Sentiment, TriageSource);

/// The fields of a triage answer, in the order asked of models: they tend to write required
/// properties in this order, so the summary and classification come before the long notes.
pub const FIELDS: [&str; 7] = [
    "summary",
    "category",
    "priority",
    "sentiment",
    "required_skills",
    "helpful_notes",
    "confidence",
];

/// A validated triage of one ticket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Triage {
    /// One or two sentences, plain text, at most [`MAX_SUMMARY_CHARS`] characters.
    pub summary: String,
    pub category: Category,
    pub priority: Priority,
    pub sentiment: Sentiment,
    /// Canonical skill names from the vocabulary (or cleaned unknown skills), at most
    /// [`skills::MAX_SKILLS`].
    pub required_skills: Vec<String>,
    /// Markdown notes for the moderator, at most [`MAX_NOTES_CHARS`] characters. Untrusted:
    /// render without raw HTML.
    pub helpful_notes: String,
    /// 0.0 ..= 1.0
    pub confidence: f64,
}

/// Why model output could not become a [`Triage`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TriageParseError {
    #[error("triage output is not a JSON object")]
    NotAnObject,
    #[error("triage field `{0}` is missing")]
    Missing(&'static str),
    #[error("triage field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("triage field `{field}` has unknown value {value:?}")]
    UnknownValue { field: &'static str, value: String },
    #[error("triage field `summary` is empty")]
    EmptySummary,
}

impl Triage {
    /// Validates untrusted model output. Field names are the snake_case ones of the schema;
    /// the camelCase spellings models sometimes produce (`helpfulNotes`, `relatedSkills`) are
    /// accepted too. See the module docs for the cleaning rules.
    pub fn parse(raw: Value) -> Result<Triage, TriageParseError> {
        let Value::Object(obj) = raw else {
            return Err(TriageParseError::NotAnObject);
        };

        let summary = clean_line(required_str(&obj, "summary", &["summary"])?);
        let summary = clamp_chars(&summary, MAX_SUMMARY_CHARS);
        if summary.is_empty() {
            return Err(TriageParseError::EmptySummary);
        }

        let category = enum_field(&obj, "category", &["category"], Category::parse_loose)?;
        let priority = enum_field(&obj, "priority", &["priority"], Priority::parse_loose)?;
        let sentiment = enum_field(&obj, "sentiment", &["sentiment"], Sentiment::parse_loose)?;

        let skills_value = field(
            &obj,
            &[
                "required_skills",
                "requiredSkills",
                "related_skills",
                "relatedSkills",
                "skills",
            ],
        )
        .ok_or(TriageParseError::Missing("required_skills"))?;
        let raw_skills: Vec<String> = match skills_value {
            Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Value::String(s) => s.split([',', ';', '\n']).map(str::to_owned).collect(),
            _ => {
                return Err(TriageParseError::WrongType {
                    field: "required_skills",
                    expected: "an array of strings",
                });
            }
        };
        let required_skills = skills::normalize_skills(&raw_skills);

        let notes_value = field(&obj, &["helpful_notes", "helpfulNotes", "notes"])
            .ok_or(TriageParseError::Missing("helpful_notes"))?;
        let notes = match notes_value {
            Value::String(s) => s.clone(),
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| format!("- {s}"))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => {
                return Err(TriageParseError::WrongType {
                    field: "helpful_notes",
                    expected: "a string",
                });
            }
        };
        let helpful_notes = clean_notes(&notes);

        let confidence = match field(&obj, &["confidence"]) {
            None => return Err(TriageParseError::Missing("confidence")),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
            Some(_) => None,
        }
        .ok_or(TriageParseError::WrongType {
            field: "confidence",
            expected: "a number between 0 and 1",
        })?;

        Ok(Triage {
            summary,
            category,
            priority,
            sentiment,
            required_skills,
            helpful_notes,
            confidence: clamp_confidence(confidence),
        })
    }
}

/// Clamps to 0..=1. Values in (1, 100] are read as percentages, which models emit now and then.
pub fn clamp_confidence(c: f64) -> f64 {
    if !c.is_finite() {
        return 0.0;
    }
    let c = if c > 1.0 && c <= 100.0 { c / 100.0 } else { c };
    c.clamp(0.0, 1.0)
}

/// Lower-case, separators folded to `_`: "Feature Request" / "feature-request" -> "feature_request".
fn fold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_sep = false;
    for c in raw.trim().chars() {
        if c.is_alphanumeric() {
            if pending_sep && !out.is_empty() {
                out.push('_');
            }
            pending_sep = false;
            out.extend(c.to_lowercase());
        } else {
            pending_sep = true;
        }
    }
    out
}

fn field<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .filter_map(|n| obj.get(*n))
        .find(|v| !v.is_null())
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
    names: &[&str],
) -> Result<&'a str, TriageParseError> {
    match field(obj, names) {
        None => Err(TriageParseError::Missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(TriageParseError::WrongType {
            field: name,
            expected: "a string",
        }),
    }
}

fn enum_field<T>(
    obj: &Map<String, Value>,
    name: &'static str,
    names: &[&str],
    parse: fn(&str) -> Option<T>,
) -> Result<T, TriageParseError> {
    let raw = required_str(obj, name, names)?;
    parse(raw).ok_or_else(|| TriageParseError::UnknownValue {
        field: name,
        value: clamp_chars(raw, 40),
    })
}

/// One line of plain text: control characters dropped, whitespace collapsed.
pub fn clean_line(raw: &str) -> String {
    raw.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

static UNSAFE_SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(javascript|vbscript|data)\s*:").expect("BUG: static regex")
});

/// Markdown from a model: CRLF normalized, control characters other than newline and tab
/// dropped, script-capable link schemes defused, surrounding blank space trimmed, clamped.
pub fn clean_notes(raw: &str) -> String {
    let normalized = raw.replace("\r\n", "\n").replace('\r', "\n");
    let visible: String = normalized
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    let defused = UNSAFE_SCHEME.replace_all(&visible, "unsafe-$1:");
    // Collapse runs of 3+ newlines (padding models sometimes emit).
    let mut out = String::with_capacity(defused.len());
    let mut newlines = 0;
    for c in defused.trim().chars() {
        if c == '\n' {
            newlines += 1;
            if newlines > 2 {
                continue;
            }
        } else {
            newlines = 0;
        }
        out.push(c);
    }
    clamp_chars(&out, MAX_NOTES_CHARS)
}

/// At most `max` characters; a cut string ends with "…".
pub fn clamp_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "summary": "Customer was charged twice for the March invoice.",
            "category": "billing",
            "priority": "high",
            "sentiment": "negative",
            "required_skills": ["Billing", "Stripe"],
            "helpful_notes": "1. Check the payment provider.\n2. Refund the duplicate.",
            "confidence": 0.87
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = valid();
        v[key] = value;
        v
    }

    #[test]
    fn parses_a_valid_object() {
        let t = Triage::parse(valid()).unwrap();
        assert_eq!(t.category, Category::Billing);
        assert_eq!(t.priority, Priority::High);
        assert_eq!(t.sentiment, Sentiment::Negative);
        assert_eq!(t.required_skills, vec!["Billing"]);
        assert_eq!(
            t.summary,
            "Customer was charged twice for the March invoice."
        );
        assert!((t.confidence - 0.87).abs() < 1e-9);
    }

    #[test]
    fn enums_are_case_and_separator_tolerant() {
        for raw in [
            "Feature Request",
            "feature-request",
            "FEATURE_REQUEST",
            " feature request ",
        ] {
            let t = Triage::parse(with("category", json!(raw))).unwrap();
            assert_eq!(t.category, Category::FeatureRequest, "{raw}");
        }
        assert_eq!(
            Triage::parse(with("priority", json!("High")))
                .unwrap()
                .priority,
            Priority::High
        );
        assert_eq!(
            Triage::parse(with("priority", json!("URGENT")))
                .unwrap()
                .priority,
            Priority::High
        );
        assert_eq!(
            Triage::parse(with("category", json!("Technical Issue")))
                .unwrap()
                .category,
            Category::TechnicalIssue
        );
        assert_eq!(
            Triage::parse(with("sentiment", json!("Very Negative")))
                .unwrap()
                .sentiment,
            Sentiment::Frustrated
        );
    }

    #[test]
    fn every_enum_round_trips_through_its_wire_name() {
        for c in Category::ALL {
            assert_eq!(Category::parse_loose(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
        }
        for p in Priority::ALL {
            assert_eq!(Priority::parse_loose(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), json!(p.as_str()));
        }
        for s in Sentiment::ALL {
            assert_eq!(Sentiment::parse_loose(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(
            serde_json::to_value(TriageSource::OpenAi).unwrap(),
            json!("openai")
        );
    }

    #[test]
    fn unknown_enum_values_are_rejected() {
        assert_eq!(
            Triage::parse(with("category", json!("hardware"))),
            Err(TriageParseError::UnknownValue {
                field: "category",
                value: "hardware".into()
            })
        );
        assert!(matches!(
            Triage::parse(with("priority", json!("whenever"))),
            Err(TriageParseError::UnknownValue {
                field: "priority",
                ..
            })
        ));
        assert!(matches!(
            Triage::parse(with("sentiment", json!(3))),
            Err(TriageParseError::WrongType {
                field: "sentiment",
                ..
            })
        ));
    }

    #[test]
    fn missing_and_wrong_types() {
        for key in FIELDS {
            let mut v = valid();
            v.as_object_mut().unwrap().remove(key);
            assert_eq!(
                Triage::parse(v),
                Err(TriageParseError::Missing(key)),
                "{key}"
            );
            assert!(Triage::parse(with(key, Value::Null)).is_err(), "{key} null");
        }
        assert_eq!(
            Triage::parse(json!([1, 2])),
            Err(TriageParseError::NotAnObject)
        );
        assert_eq!(
            Triage::parse(json!("text")),
            Err(TriageParseError::NotAnObject)
        );
        assert!(matches!(
            Triage::parse(with("required_skills", json!(5))),
            Err(TriageParseError::WrongType {
                field: "required_skills",
                ..
            })
        ));
        assert!(matches!(
            Triage::parse(with("helpful_notes", json!({"a": 1}))),
            Err(TriageParseError::WrongType {
                field: "helpful_notes",
                ..
            })
        ));
        assert!(matches!(
            Triage::parse(with("confidence", json!("high"))),
            Err(TriageParseError::WrongType {
                field: "confidence",
                ..
            })
        ));
        assert_eq!(
            Triage::parse(with("summary", json!("  \n\t "))),
            Err(TriageParseError::EmptySummary)
        );
    }

    #[test]
    fn camel_case_aliases_are_accepted() {
        let t = Triage::parse(json!({
            "summary": "s", "category": "bug", "priority": "low", "sentiment": "neutral",
            "relatedSkills": ["React"], "helpfulNotes": "n", "confidence": 1
        }))
        .unwrap();
        assert_eq!(t.required_skills, vec!["Frontend"]);
        assert_eq!(t.helpful_notes, "n");
    }

    #[test]
    fn lengths_are_clamped_and_text_cleaned() {
        let long = "word ".repeat(500);
        let t = Triage::parse(with("summary", json!(long))).unwrap();
        assert_eq!(t.summary.chars().count(), MAX_SUMMARY_CHARS);
        assert!(t.summary.ends_with('…'));
        let t = Triage::parse(with("summary", json!("line one\nline\u{7}two\r\n"))).unwrap();
        assert_eq!(t.summary, "line one line two");

        let t = Triage::parse(with("helpful_notes", json!("x".repeat(10_000)))).unwrap();
        assert_eq!(t.helpful_notes.chars().count(), MAX_NOTES_CHARS);

        let t = Triage::parse(with(
            "helpful_notes",
            json!("See [docs](javascript:alert(1))\r\n\r\n\r\n\r\nand\u{0} [x](Data:text/html,hi)"),
        ))
        .unwrap();
        assert_eq!(
            t.helpful_notes,
            "See [docs](unsafe-javascript:alert(1))\n\nand [x](unsafe-Data:text/html,hi)"
        );
    }

    #[test]
    fn notes_given_as_a_list_become_bullets() {
        let t = Triage::parse(with("helpful_notes", json!(["check logs", "restart"]))).unwrap();
        assert_eq!(t.helpful_notes, "- check logs\n- restart");
    }

    #[test]
    fn skills_are_normalized() {
        let t = Triage::parse(with(
            "required_skills",
            json!([
                "PostgreSQL",
                "postgres",
                "(a+)+$",
                ".*",
                42,
                "Node.js",
                "COBOL"
            ]),
        ))
        .unwrap();
        assert_eq!(t.required_skills, vec!["Database", "JavaScript", "COBOL"]);
        let t = Triage::parse(with("required_skills", json!("SQL, React; C#"))).unwrap();
        assert_eq!(t.required_skills, vec!["Database", "Frontend", ".NET"]);
    }

    #[test]
    fn confidence_is_clamped() {
        let c = |v: Value| Triage::parse(with("confidence", v)).unwrap().confidence;
        assert_eq!(c(json!(-0.5)), 0.0);
        assert_eq!(c(json!(1.0)), 1.0);
        assert!((c(json!(85)) - 0.85).abs() < 1e-9);
        assert_eq!(c(json!(1e9)), 1.0);
        assert!((c(json!("0.4")) - 0.4).abs() < 1e-9);
        assert!((c(json!("70%")) - 0.7).abs() < 1e-9);
    }

    #[test]
    fn serializes_with_snake_case_fields() {
        let t = Triage::parse(valid()).unwrap();
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["category"], "billing");
        assert_eq!(v["required_skills"], json!(["Billing"]));
        let back: Triage = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }
}
