//! The rules engine's patterns. They are data, `patterns.json` next to this file, compiled into
//! the binary and turned into regexes once per process; ticket text is only ever the haystack.
//! Every pattern is matched case-insensitively.

use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use serde::Deserialize;

use crate::domain::triage::Category;

/// A pattern that adds `weight` to a score when it matches.
pub(super) struct Signal {
    pub label: String,
    pub re: Regex,
    pub weight: u32,
    /// Its place in the set that screens texts for it ([`Patterns::category_set`] or
    /// [`Patterns::text_set`]).
    pub slot: usize,
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
    /// Every category signal, at its `slot`. One pass of the set over a text tells which of
    /// them match it at all (most do not), and only those are searched again for the words.
    pub category_set: RegexSet,
    /// The same for the whole text: `high` first (each at its index), then `low`,
    /// `frustrated`, `negative` and `positive` at their `slot`.
    pub text_set: RegexSet,
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

fn case_insensitive(pattern: &str) -> String {
    format!("(?i){pattern}")
}

fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&case_insensitive(pattern)).map_err(|e| format!("pattern {pattern:?}: {e}"))
}

/// The patterns of one screening set, in slot order.
#[derive(Default)]
struct SetPatterns(Vec<String>);

impl SetPatterns {
    /// Adds `pattern`; its slot.
    fn add(&mut self, pattern: &str) -> usize {
        self.0.push(case_insensitive(pattern));
        self.0.len() - 1
    }

    fn compile(self) -> Result<RegexSet, String> {
        RegexSet::new(self.0).map_err(|e| format!("screening set: {e}"))
    }
}

fn signals(entries: Vec<SignalEntry>, set: &mut SetPatterns) -> Result<Vec<Signal>, String> {
    entries
        .into_iter()
        .map(|e| {
            Ok(Signal {
                re: regex(&e.pattern)?,
                slot: set.add(&e.pattern),
                label: e.label,
                weight: e.weight,
            })
        })
        .collect()
}

impl Patterns {
    fn parse(json: &str) -> Result<Self, String> {
        let file: PatternFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let (mut category_set, mut text_set) = (SetPatterns::default(), SetPatterns::default());
        let categories = file
            .categories
            .into_iter()
            .map(|c| Ok((c.category, signals(c.signals, &mut category_set)?)))
            .collect::<Result<_, String>>()?;
        let high = file
            .high
            .into_iter()
            .map(|h| {
                text_set.add(&h.pattern);
                Ok((h.kind, regex(&h.pattern)?))
            })
            .collect::<Result<_, String>>()?;
        let low = signals(file.low, &mut text_set)?;
        let frustrated = signals(file.frustrated, &mut text_set)?;
        let negative = signals(file.negative, &mut text_set)?;
        let positive = signals(file.positive, &mut text_set)?;
        Ok(Patterns {
            categories,
            high,
            urgency_negated: regex(&file.urgency_negated)?,
            low,
            frustrated,
            negative,
            positive,
            category_set: category_set.compile()?,
            text_set: text_set.compile()?,
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

    #[test]
    fn the_screening_sets_find_exactly_what_each_pattern_finds() {
        let p = Patterns::parse(include_str!("patterns.json")).unwrap();
        let texts = [
            "Dashboard down for the whole team\nSince 9am everyone gets 503 errors. URGENT!",
            "Charged twice\nMy card was billed twice for the March invoice. Please refund.",
            "Cannot log in\nThe reset mail never arrives and I am locked out of my account.",
            "Feature idea\nIt would be lovely to export to CSV. Not urgent, thanks a lot!",
            "This is ridiculous\nThird time I write, still no answer, very disappointed.",
            "Question\nHow do I invite a colleague? Love the product, great work.",
            "",
        ];
        let category_signals = p.categories.iter().flat_map(|(_, s)| s);
        let text_signals = [&p.low, &p.frustrated, &p.negative, &p.positive]
            .into_iter()
            .flatten();
        let mut seen = (0, 0);
        for text in texts {
            let (by_category, by_text) = (p.category_set.matches(text), p.text_set.matches(text));
            for s in category_signals.clone() {
                assert_eq!(
                    by_category.matched(s.slot),
                    s.re.is_match(text),
                    "{}",
                    s.label
                );
                seen.0 += usize::from(s.re.is_match(text));
            }
            for (slot, (kind, re)) in p.high.iter().enumerate() {
                assert_eq!(by_text.matched(slot), re.is_match(text), "{kind:?}");
            }
            for s in text_signals.clone() {
                assert_eq!(by_text.matched(s.slot), s.re.is_match(text), "{}", s.label);
                seen.1 += usize::from(s.re.is_match(text));
            }
        }
        // The texts exercise both sets, so the slots are compared where they match too.
        assert!(seen.0 >= 5 && seen.1 >= 5, "{seen:?}");
        let slots = category_signals.map(|s| s.slot).collect::<HashSet<_>>();
        assert_eq!(slots.len(), p.category_set.len());
        let slots = text_signals.map(|s| s.slot).collect::<HashSet<_>>();
        assert_eq!(slots.len() + p.high.len(), p.text_set.len());
    }
}
