//! The rules engine's patterns. They are data, `patterns.json` next to this file, compiled into
//! the binary and turned into regexes once per process; ticket text is only ever the haystack.
//! Every pattern is matched case-insensitively.

use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;

use crate::domain::triage::Category;

/// A pattern that adds `weight` to a score when it matches.
pub(super) struct Signal {
    pub label: String,
    pub re: Regex,
    pub weight: u32,
}

/// Why a priority was chosen; drives the notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum HighKind {
    Outage,
    ManyUsers,
    DataLoss,
    Security,
    AccessBlocked,
    PaymentFailure,
    Urgency,
}

impl HighKind {
    pub fn label(self) -> &'static str {
        match self {
            HighKind::Outage => "service outage",
            HighKind::ManyUsers => "many users affected",
            HighKind::DataLoss => "possible data loss",
            HighKind::Security => "possible security incident",
            HighKind::AccessBlocked => "customer cannot get in",
            HighKind::PaymentFailure => "payment problem",
            HighKind::Urgency => "marked urgent",
        }
    }
}

pub(super) struct Patterns {
    /// In tie-break order: when two categories score the same, the earlier one wins (a billing
    /// question is handled as billing).
    pub categories: Vec<(Category, Vec<Signal>)>,
    /// Any match makes a ticket high priority.
    pub high: Vec<(HighKind, Regex)>,
    /// "not urgent" and the like: cancels [`HighKind::Urgency`].
    pub urgency_negated: Regex,
    pub low: Vec<Signal>,
    pub frustrated: Vec<Signal>,
    pub negative: Vec<Signal>,
    pub positive: Vec<Signal>,
}

/// Compiled once per process, when first needed: compiling takes tens of milliseconds and some
/// megabytes, which a server that starts, or one whose AI never fails, need not pay.
static PATTERNS: OnceLock<Patterns> = OnceLock::new();

pub(super) fn patterns() -> &'static Patterns {
    PATTERNS.get_or_init(|| {
        Patterns::parse(include_str!("patterns.json"))
            .expect("BUG: patterns.json is checked by pattern_data_is_valid")
    })
}

/// Whether [`patterns`] has compiled them already.
pub(super) fn compiled() -> bool {
    PATTERNS.get().is_some()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternFile {
    categories: Vec<CategoryEntry>,
    high: Vec<HighEntry>,
    urgency_negated: String,
    low: Vec<SignalEntry>,
    frustrated: Vec<SignalEntry>,
    negative: Vec<SignalEntry>,
    positive: Vec<SignalEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryEntry {
    category: Category,
    signals: Vec<SignalEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HighEntry {
    kind: HighKind,
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalEntry {
    label: String,
    weight: u32,
    pattern: String,
}

fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("(?i){pattern}")).map_err(|e| format!("pattern {pattern:?}: {e}"))
}

fn signals(entries: Vec<SignalEntry>) -> Result<Vec<Signal>, String> {
    entries
        .into_iter()
        .map(|e| {
            Ok(Signal {
                re: regex(&e.pattern)?,
                label: e.label,
                weight: e.weight,
            })
        })
        .collect()
}

impl Patterns {
    fn parse(json: &str) -> Result<Self, String> {
        let file: PatternFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(Patterns {
            categories: file
                .categories
                .into_iter()
                .map(|c| Ok((c.category, signals(c.signals)?)))
                .collect::<Result<_, String>>()?,
            high: file
                .high
                .into_iter()
                .map(|h| Ok((h.kind, regex(&h.pattern)?)))
                .collect::<Result<_, String>>()?,
            urgency_negated: regex(&file.urgency_negated)?,
            low: signals(file.low)?,
            frustrated: signals(file.frustrated)?,
            negative: signals(file.negative)?,
            positive: signals(file.positive)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn pattern_data_is_valid() {
        // Parsing compiles every regex.
        let p = Patterns::parse(include_str!("patterns.json")).unwrap();

        let categories: Vec<Category> = p.categories.iter().map(|(c, _)| *c).collect();
        let expected: HashSet<Category> = Category::ALL
            .into_iter()
            .filter(|c| *c != Category::Other)
            .collect();
        assert_eq!(categories.len(), expected.len(), "{categories:?}");
        assert_eq!(categories.into_iter().collect::<HashSet<_>>(), expected);

        let kinds: Vec<HighKind> = p.high.iter().map(|(k, _)| *k).collect();
        for kind in &kinds {
            assert_eq!(kinds.iter().filter(|k| *k == kind).count(), 1, "{kind:?}");
        }
        assert_eq!(kinds.len(), 7, "every kind of high priority has a pattern");

        let groups = p.categories.iter().map(|(c, s)| (c.as_str(), s)).chain([
            ("low", &p.low),
            ("frustrated", &p.frustrated),
            ("negative", &p.negative),
            ("positive", &p.positive),
        ]);
        for (group, signals) in groups {
            assert!(!signals.is_empty(), "{group} has no signals");
            let mut labels = HashSet::new();
            for s in signals {
                assert!(!s.label.trim().is_empty(), "{group}: empty label");
                assert!(labels.insert(&s.label), "{group} repeats {:?}", s.label);
                assert!(s.weight > 0, "{group}: {} has no weight", s.label);
                // A pattern matching the empty string would fire on every ticket.
                assert!(!s.re.is_match(""), "{group}: {} matches nothing", s.label);
            }
        }
        assert!(!p.urgency_negated.is_match(""));
        assert!(p.high.iter().all(|(_, re)| !re.is_match("")));
    }
}
