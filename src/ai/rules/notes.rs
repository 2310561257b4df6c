//! What the rules engine writes: the markdown notes (why this triage, what to do next) and the
//! one-line summary.

use std::fmt::Write as _;

use super::Hit;
use super::patterns::HighKind;
use crate::domain::skills::SkillDef;
use crate::domain::triage::{Category, Priority, Sentiment, clamp_chars, clean_line};

pub(super) struct NotesInput<'a> {
    pub category: Category,
    pub category_hits: &'a [Hit],
    pub priority: Priority,
    pub high_kinds: &'a [HighKind],
    pub priority_hits: &'a [Hit],
    pub sentiment: Sentiment,
    pub sentiment_hits: &'a [Hit],
    pub skills: &'a [(&'static SkillDef, usize)],
}

pub(super) fn notes(n: NotesInput<'_>) -> String {
    let mut out = String::new();
    out.push_str(
        "_Triaged automatically by the built-in rules engine (no AI model was used); \
         check before relying on it._\n\n**Why this triage**\n",
    );
    let _ = writeln!(
        out,
        "- Category **{}**: {}",
        n.category.label(),
        if n.category == Category::Other {
            "no clear signal in the text".to_string()
        } else {
            quote_hits(n.category_hits)
        }
    );
    let priority_reason = if !n.high_kinds.is_empty() || !n.priority_hits.is_empty() {
        describe_hits(n.priority_hits)
    } else {
        format!("default for a {}", n.category.label())
    };
    let _ = writeln!(out, "- Priority **{}**: {}", n.priority, priority_reason);
    let _ = writeln!(
        out,
        "- Sentiment **{}**: {}",
        n.sentiment,
        if n.sentiment_hits.is_empty() {
            "no strong tone markers".to_string()
        } else {
            quote_hits(n.sentiment_hits)
        }
    );
    if n.skills.is_empty() {
        out.push_str("- Skills: none recognised; route by category\n");
    } else {
        let list: Vec<String> = n
            .skills
            .iter()
            .map(|(d, hits)| match hits {
                0 => format!("{} (from the category)", d.name),
                1 => format!("{} (1 cue)", d.name),
                h => format!("{} ({h} cues)", d.name),
            })
            .collect();
        let _ = writeln!(out, "- Skills: {}", list.join(", "));
    }

    out.push_str("\n**Suggested next steps**\n");
    let mut steps: Vec<&str> = Vec::new();
    for kind in n.high_kinds {
        steps.push(match kind {
            HighKind::Security => {
                "Treat this as a potential security incident: follow the incident process, \
                 and keep details out of public replies."
            }
            HighKind::DataLoss => {
                "Possible data loss: ask the customer to avoid changes that could overwrite \
                 data, and check backups and restore options."
            }
            HighKind::Outage | HighKind::ManyUsers => {
                "Check monitoring and the status page for a wider incident, and link related \
                 tickets."
            }
            HighKind::AccessBlocked => {
                "Check for lockouts, two-factor and SSO problems; verify the requester's \
                 identity before changing the account."
            }
            HighKind::PaymentFailure => {
                "Look up the failed or duplicate transactions in the payment provider's \
                 dashboard."
            }
            HighKind::Urgency => "The customer marked this as urgent: acknowledge it quickly.",
        });
    }
    steps.extend(category_steps(n.category));
    if n.sentiment == Sentiment::Frustrated {
        steps.push(
            "The customer sounds frustrated: acknowledge the impact first and promise a \
             concrete time for the next update.",
        );
    }
    steps.dedup();
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", i + 1, step);
    }
    crate::domain::triage::clean_notes(&out)
}

fn category_steps(category: Category) -> &'static [&'static str] {
    match category {
        Category::Bug => &[
            "Reproduce it with the customer's steps and environment (app or browser version, OS, \
             time of the error).",
            "Collect error messages, screenshots or logs, and check recent releases for a \
             regression.",
            "If confirmed, file a defect with the reproduction steps and link this ticket.",
        ],
        Category::TechnicalIssue => &[
            "Ask for timestamps, the affected account or region and the exact error output.",
            "Check service health, recent deployments and configuration changes.",
            "Escalate to the on-call engineer if more customers are affected.",
        ],
        Category::Billing => &[
            "Look up the customer's invoices and payment history in the billing system.",
            "Confirm the amounts and dates in question before promising a refund or credit.",
            "Reply with the outcome and a corrected invoice or refund reference.",
        ],
        Category::Account => &[
            "Verify the requester's identity before changing anything on the account.",
            "Check the account's status, recent password resets and sign-in history.",
            "Never send passwords or codes in the ticket; use the reset flow.",
        ],
        Category::FeatureRequest => &[
            "Thank the customer and restate the use case in your own words.",
            "Check whether the feature exists under another name or is already planned.",
            "Record the request for the product team and link this ticket.",
        ],
        Category::Question => &[
            "Answer directly, linking the relevant help-centre article if there is one.",
            "If the answer is not documented, flag the gap to the documentation owners.",
        ],
        Category::Other => &[
            "Read the ticket and set the category by hand: the rules found no strong signal.",
            "Ask the customer for details if the request is unclear.",
        ],
    }
}

fn quote_hits(hits: &[Hit]) -> String {
    let mut seen = Vec::new();
    for h in hits {
        let t = clamp_chars(&clean_line(&h.text.to_lowercase()), 40);
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    seen.iter()
        .take(5)
        .map(|t| format!("\"{}\"", t.replace('"', "'")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_hits(hits: &[Hit]) -> String {
    hits.iter()
        .take(4)
        .map(|h| {
            format!(
                "{} (\"{}\")",
                h.label,
                clamp_chars(&clean_line(&h.text.to_lowercase()), 40).replace('"', "'")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn summary(category: Category, title: &str, description: &str) -> String {
    let lead = match category {
        Category::Bug => "Bug report",
        Category::TechnicalIssue => "Technical issue",
        Category::Billing => "Billing issue",
        Category::Account => "Account issue",
        Category::FeatureRequest => "Feature request",
        Category::Question => "Question",
        Category::Other => "Support request",
    };
    let first = first_sentence(description);
    let title = title.trim().trim_end_matches(['.', '!', '?', ':']).trim();
    let mut s = if title.is_empty() {
        format!("{lead}: {first}")
    } else if first.is_empty()
        || first.trim_end_matches(['.', '!', '?']).to_lowercase() == title.to_lowercase()
    {
        format!("{lead}: {title}")
    } else {
        let first = first.trim_end_matches(['.', '!', '?']);
        format!("{lead}: {title} — {first}")
    };
    s = clamp_chars(&clean_line(&s), 280);
    if !s.ends_with(['.', '!', '?', '…']) {
        s.push('.');
    }
    s
}

fn first_sentence(text: &str) -> String {
    let line = clean_line(text);
    let end = line
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?')
                && line[i + c.len_utf8()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        })
        .map_or(line.len(), |(i, c)| i + c.len_utf8());
    clamp_chars(line[..end].trim(), 160)
}
