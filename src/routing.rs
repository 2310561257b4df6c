//! Choosing who works a ticket. No I/O: the caller loads the candidates (staff with their skills
//! and current load) and stores the decision. The decision depends only on the arguments; the
//! one piece of shared state is a cache of compiled skill patterns, which never changes a result.
//!
//! Rules, in order:
//! 1. Moderators whose skills match at least one required skill and who have capacity left
//!    (`open_tickets < capacity`; no capacity means unlimited) are ranked by the number of
//!    matched skills, then fewest open tickets, then longest since their last assignment (never
//!    assigned first), then id (for determinism).
//! 2. A ticket that requires no particular skill goes to the least-loaded moderator with capacity
//!    (same tie-breaks).
//! 3. Otherwise the least-loaded admin with capacity takes it.
//! 4. Otherwise nobody: the ticket waits in the unassigned queue.
//!
//! Skills match through the shared vocabulary: a "Database" ticket matches a moderator who lists
//! "SQL", "Postgres" or "MongoDB". Patterns are built only from escaped terms with word
//! boundaries, so "Java" does not match "JavaScript" and a skill such as `(a+)+$` is literal text.

use std::cmp::{Ordering, Reverse};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::domain::skills;

/// The staff roles that can be assigned tickets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateRole {
    Moderator,
    Admin,
}

/// A staff member who could take the ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub role: CandidateRole,
    /// Free-form skills as the person listed them.
    pub skills: Vec<String>,
    /// Tickets currently assigned and not yet resolved.
    pub open_tickets: u32,
    /// Most open tickets this person should hold; `None` means no limit.
    pub capacity: Option<u32>,
    pub last_assigned_at: Option<DateTime<Utc>>,
}

impl Candidate {
    fn has_capacity(&self) -> bool {
        self.capacity.is_none_or(|c| self.open_tickets < c)
    }
}

/// The outcome of routing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingDecision {
    /// Id of the chosen candidate; `None` leaves the ticket in the unassigned queue.
    pub assignee: Option<String>,
    /// One human-readable sentence explaining the choice, stored on the ticket.
    pub reason: String,
    /// The required skills the assignee matched (as given in `required_skills`).
    pub matched: Vec<String>,
}

struct Requirement<'a> {
    skill: &'a str,
    pattern: Arc<Regex>,
}

/// Compiled patterns by required skill (lowercased; the patterns ignore case). Routing runs for
/// every ticket and the skills mostly come from a small vocabulary, so each pattern is compiled
/// once rather than per ticket. Bounded, since an AI may name any skill.
static PATTERNS: LazyLock<Mutex<HashMap<String, Arc<Regex>>>> = LazyLock::new(Mutex::default);
const MAX_CACHED_PATTERNS: usize = 1024;

fn skill_pattern(skill: &str) -> Option<Arc<Regex>> {
    let key = skill.to_lowercase();
    let cached = |key: &str| {
        PATTERNS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    };
    if let Some(pattern) = cached(&key) {
        return Some(pattern);
    }
    let pattern = Arc::new(skills::term_regex(skills::equivalent_terms(skill))?);
    let mut patterns = PATTERNS.lock().unwrap_or_else(|p| p.into_inner());
    if patterns.len() >= MAX_CACHED_PATTERNS {
        patterns.clear();
    }
    patterns.insert(key, pattern.clone());
    Some(pattern)
}

fn requirements(required_skills: &[String]) -> Vec<Requirement<'_>> {
    let mut seen = HashSet::new();
    required_skills
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && seen.insert(s.to_lowercase()))
        .filter_map(|skill| {
            let pattern = skill_pattern(skill)?;
            Some(Requirement { skill, pattern })
        })
        .collect()
}

fn matched_skills(reqs: &[Requirement<'_>], candidate: &Candidate) -> Vec<String> {
    reqs.iter()
        .filter(|r| candidate.skills.iter().any(|s| r.pattern.is_match(s)))
        .map(|r| r.skill.to_string())
        .collect()
}

/// Fewest open tickets, then longest since the last assignment (never first), then id.
fn load_order(a: &Candidate, b: &Candidate) -> Ordering {
    a.open_tickets
        .cmp(&b.open_tickets)
        .then_with(|| match (a.last_assigned_at, b.last_assigned_at) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(&y),
        })
        .then_with(|| a.id.cmp(&b.id))
}

/// Picks the assignee for a ticket needing `required_skills`. See the module docs for the rules.
pub fn choose_assignee(
    required_skills: &[String],
    candidates: &[Candidate],
    now: DateTime<Utc>,
) -> RoutingDecision {
    let reqs = requirements(required_skills);
    let moderators = candidates
        .iter()
        .filter(|c| c.role == CandidateRole::Moderator);

    if reqs.is_empty() {
        let best = moderators
            .clone()
            .filter(|c| c.has_capacity())
            .min_by(|a, b| load_order(a, b));
        if let Some(m) = best {
            return RoutingDecision {
                assignee: Some(m.id.clone()),
                reason: format!(
                    "No particular skill is required; assigned to the least-loaded moderator \
                     ({}{}).",
                    load_phrase(m),
                    last_assigned_phrase(m, now)
                ),
                matched: Vec::new(),
            };
        }
        return admin_fallback(
            candidates,
            now,
            "No moderator has capacity left".to_string(),
        );
    }

    let mut skilled: Vec<(&Candidate, Vec<String>)> = moderators
        .map(|c| (c, matched_skills(&reqs, c)))
        .filter(|(_, m)| !m.is_empty())
        .collect();
    let skilled_total = skilled.len();
    skilled.retain(|(c, _)| c.has_capacity());
    skilled.sort_by(|(a, am), (b, bm)| {
        Reverse(am.len())
            .cmp(&Reverse(bm.len()))
            .then_with(|| load_order(a, b))
    });

    let wanted = reqs.iter().map(|r| r.skill).collect::<Vec<_>>().join(", ");
    let Some((best, matched)) = skilled.first() else {
        let at_capacity = skilled_total;
        let why = if at_capacity > 0 {
            format!(
                "The {} moderator{} matching {wanted} {} at capacity",
                at_capacity,
                plural(at_capacity),
                if at_capacity == 1 { "is" } else { "are" }
            )
        } else {
            format!("No moderator has the skills {wanted}")
        };
        return admin_fallback(candidates, now, why);
    };

    let equally_skilled = skilled
        .iter()
        .filter(|(_, m)| m.len() == matched.len())
        .count();
    let tie_break = if equally_skilled > 1 {
        format!(
            "; chosen over {} equally matching moderator{} for the lowest workload ({}{})",
            equally_skilled - 1,
            plural(equally_skilled - 1),
            load_phrase(best),
            last_assigned_phrase(best, now)
        )
    } else {
        format!(" ({})", load_phrase(best))
    };
    RoutingDecision {
        assignee: Some(best.id.clone()),
        reason: format!(
            "Moderator matches {} of {} required skill{}: {}{}.",
            matched.len(),
            reqs.len(),
            plural(reqs.len()),
            matched.join(", "),
            tie_break
        ),
        matched: matched.clone(),
    }
}

fn admin_fallback(candidates: &[Candidate], now: DateTime<Utc>, why: String) -> RoutingDecision {
    let admins: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.role == CandidateRole::Admin)
        .collect();
    match admins
        .iter()
        .filter(|c| c.has_capacity())
        .min_by(|a, b| load_order(a, b))
    {
        Some(admin) => RoutingDecision {
            assignee: Some(admin.id.clone()),
            reason: format!(
                "{why}; assigned to the least-loaded admin ({}{}).",
                load_phrase(admin),
                last_assigned_phrase(admin, now)
            ),
            matched: Vec::new(),
        },
        None => RoutingDecision {
            assignee: None,
            reason: format!(
                "{why}, and {}; the ticket waits in the unassigned queue.",
                if admins.is_empty() {
                    "there is no admin"
                } else {
                    "every admin is at capacity"
                }
            ),
            matched: Vec::new(),
        },
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn load_phrase(c: &Candidate) -> String {
    let open = format!(
        "{} open ticket{}",
        c.open_tickets,
        plural(c.open_tickets as usize)
    );
    match c.capacity {
        Some(cap) => format!("{open} of {cap}"),
        None => open,
    }
}

fn last_assigned_phrase(c: &Candidate, now: DateTime<Utc>) -> String {
    match c.last_assigned_at {
        None => ", never assigned before".to_string(),
        Some(at) => format!(", last assigned {}", ago(now - at)),
    }
}

fn ago(d: chrono::TimeDelta) -> String {
    let mins = d.num_minutes();
    if mins < 1 {
        "just now".to_string()
    } else if mins < 60 {
        format!("{mins} minute{} ago", plural(mins as usize))
    } else if mins < 48 * 60 {
        let h = mins / 60;
        format!("{h} hour{} ago", plural(h as usize))
    } else {
        let days = mins / (24 * 60);
        format!("{days} days ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn moderator(id: &str, skills: &[&str]) -> Candidate {
        Candidate {
            id: id.into(),
            role: CandidateRole::Moderator,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            open_tickets: 0,
            capacity: None,
            last_assigned_at: None,
        }
    }

    fn admin(id: &str) -> Candidate {
        Candidate {
            role: CandidateRole::Admin,
            ..moderator(id, &[])
        }
    }

    fn with_load(mut c: Candidate, open: u32, capacity: Option<u32>) -> Candidate {
        c.open_tickets = open;
        c.capacity = capacity;
        c
    }

    fn assigned_hours_ago(mut c: Candidate, hours: i64) -> Candidate {
        c.last_assigned_at = Some(now() - chrono::TimeDelta::hours(hours));
        c
    }

    fn req(skills: &[&str]) -> Vec<String> {
        skills.iter().map(|s| s.to_string()).collect()
    }

    fn pick(required: &[&str], candidates: &[Candidate]) -> RoutingDecision {
        choose_assignee(&req(required), candidates, now())
    }

    #[test]
    fn database_ticket_finds_sql_postgres_and_mongo_people() {
        for skill in ["SQL", "Postgres", "PostgreSQL", "MongoDB", "MySQL DBA"] {
            let cands = [
                moderator("web", &["React", "CSS"]),
                moderator("db", &[skill]),
                admin("a"),
            ];
            let d = pick(&["Database"], &cands);
            assert_eq!(d.assignee.as_deref(), Some("db"), "{skill}");
            assert_eq!(d.matched, vec!["Database"]);
        }
    }

    #[test]
    fn java_does_not_match_javascript() {
        let cands = [moderator("js", &["JavaScript"]), admin("a")];
        let d = pick(&["Java"], &cands);
        assert_eq!(d.assignee.as_deref(), Some("a"));
        let cands = [moderator("java", &["Java", "Spring"]), admin("a")];
        assert_eq!(pick(&["JavaScript"], &cands).assignee.as_deref(), Some("a"));
        assert_eq!(pick(&["Java"], &cands).assignee.as_deref(), Some("java"));
    }

    #[test]
    fn symbol_skills_match_exactly() {
        let cands = [
            moderator("c", &["C"]),
            moderator("cpp", &["C++"]),
            moderator("cs", &["C#"]),
            moderator("net", &[".NET Core"]),
            admin("a"),
        ];
        assert_eq!(pick(&["C++"], &cands).assignee.as_deref(), Some("cpp"));
        // C# and .NET are the same skill: two equal matches, tie broken by id
        assert_eq!(pick(&["C#"], &cands).assignee.as_deref(), Some("cs"));
        assert_eq!(
            pick(&[".NET"], &cands[3..]).assignee.as_deref(),
            Some("net")
        );
        // a plain "C" moderator is not a C++ or C# expert, and nobody matches "C" but "c"
        assert_eq!(pick(&["C"], &cands).assignee.as_deref(), Some("c"));
        assert_eq!(
            pick(&["C++"], &[moderator("c", &["C"]), admin("a")])
                .assignee
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn hostile_skill_strings_are_literal() {
        let cands = [
            moderator("any", &["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "anything"]),
            moderator("lit", &["(a+)+$"]),
            admin("a"),
        ];
        assert_eq!(pick(&["(a+)+$"], &cands).assignee.as_deref(), Some("lit"));
        assert_eq!(pick(&[".*"], &cands).assignee.as_deref(), Some("a"));
        assert_eq!(pick(&["["], &cands).assignee.as_deref(), Some("a"));
        assert_eq!(pick(&["a|any"], &cands).assignee.as_deref(), Some("a"));
    }

    #[test]
    fn more_matched_skills_win() {
        let cands = [
            moderator("one", &["Postgres"]),
            moderator("two", &["Postgres", "React"]),
            admin("a"),
        ];
        let d = pick(&["Database", "Frontend", "Billing"], &cands);
        assert_eq!(d.assignee.as_deref(), Some("two"));
        assert_eq!(d.matched, vec!["Database", "Frontend"]);
        assert!(
            d.reason
                .starts_with("Moderator matches 2 of 3 required skills: Database, Frontend"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn ties_go_to_fewest_open_tickets() {
        let cands = [
            with_load(moderator("busy", &["SQL"]), 5, None),
            with_load(moderator("free", &["SQL"]), 1, None),
        ];
        let d = pick(&["Database"], &cands);
        assert_eq!(d.assignee.as_deref(), Some("free"));
        assert!(
            d.reason
                .contains("chosen over 1 equally matching moderator"),
            "{}",
            d.reason
        );
        assert!(d.reason.contains("1 open ticket"), "{}", d.reason);
    }

    #[test]
    fn then_longest_since_last_assignment_never_first() {
        let recent = assigned_hours_ago(moderator("recent", &["SQL"]), 1);
        let old = assigned_hours_ago(moderator("old", &["SQL"]), 30);
        let never = moderator("never", &["SQL"]);
        let d = pick(&["Database"], &[recent.clone(), old.clone(), never]);
        assert_eq!(d.assignee.as_deref(), Some("never"));
        assert!(d.reason.contains("never assigned before"), "{}", d.reason);
        let d = pick(&["Database"], &[recent, old]);
        assert_eq!(d.assignee.as_deref(), Some("old"));
        assert!(
            d.reason.contains("last assigned 30 hours ago"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn full_tie_is_deterministic_by_id() {
        let cands = [moderator("b", &["SQL"]), moderator("a", &["SQL"])];
        assert_eq!(pick(&["Database"], &cands).assignee.as_deref(), Some("a"));
        let rev = [moderator("a", &["SQL"]), moderator("b", &["SQL"])];
        assert_eq!(pick(&["Database"], &rev).assignee.as_deref(), Some("a"));
    }

    #[test]
    fn capacity_is_respected() {
        let cands = [
            with_load(moderator("full", &["SQL", "React"]), 3, Some(3)),
            with_load(moderator("room", &["SQL"]), 2, Some(3)),
            admin("a"),
        ];
        let d = pick(&["Database", "Frontend"], &cands);
        assert_eq!(d.assignee.as_deref(), Some("room"));
        assert!(d.reason.contains("2 open tickets of 3"), "{}", d.reason);

        let zero = [
            with_load(moderator("away", &["SQL"]), 0, Some(0)),
            admin("a"),
        ];
        assert_eq!(pick(&["Database"], &zero).assignee.as_deref(), Some("a"));
    }

    #[test]
    fn skilled_moderators_at_capacity_fall_back_to_admin() {
        let cands = [
            with_load(moderator("m1", &["SQL"]), 5, Some(5)),
            with_load(moderator("m2", &["Postgres"]), 9, Some(5)),
            moderator("web", &["React"]),
            with_load(admin("a-busy"), 4, None),
            with_load(admin("a-free"), 1, None),
        ];
        let d = pick(&["Database"], &cands);
        assert_eq!(d.assignee.as_deref(), Some("a-free"));
        assert!(d.matched.is_empty());
        assert!(
            d.reason.starts_with("The 2 moderators matching Database are at capacity; assigned to the least-loaded admin"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn unmatched_skills_go_to_least_loaded_admin() {
        let cands = [
            moderator("web", &["React"]),
            assigned_hours_ago(with_load(admin("a1"), 2, None), 1),
            assigned_hours_ago(with_load(admin("a2"), 2, None), 5),
            with_load(admin("a3"), 3, None),
        ];
        let d = pick(&["Billing"], &cands);
        assert_eq!(d.assignee.as_deref(), Some("a2"));
        assert!(
            d.reason.starts_with("No moderator has the skills Billing"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn admins_are_not_skill_matched_before_moderators() {
        let mut a = admin("a");
        a.skills = vec!["SQL".into()];
        let cands = [a, moderator("m", &["MongoDB"])];
        assert_eq!(pick(&["Database"], &cands).assignee.as_deref(), Some("m"));
    }

    #[test]
    fn nobody_available_means_queue() {
        let d = pick(&["Database"], &[moderator("web", &["React"])]);
        assert_eq!(d.assignee, None);
        assert!(d.reason.contains("there is no admin"), "{}", d.reason);
        assert!(d.reason.contains("unassigned queue"));

        let d = pick(&["Database"], &[with_load(admin("a"), 2, Some(2))]);
        assert_eq!(d.assignee, None);
        assert!(
            d.reason.contains("every admin is at capacity"),
            "{}",
            d.reason
        );

        let d = pick(&[], &[]);
        assert_eq!(d.assignee, None);
    }

    #[test]
    fn no_required_skills_goes_to_least_loaded_moderator() {
        let cands = [
            with_load(moderator("m1", &["SQL"]), 4, None),
            with_load(moderator("m2", &[]), 1, None),
            with_load(moderator("m3", &["React"]), 0, Some(0)),
            admin("a"),
        ];
        for required in [&[][..], &["", "   "][..]] {
            let d = pick(required, &cands);
            assert_eq!(d.assignee.as_deref(), Some("m2"));
            assert!(
                d.reason.starts_with("No particular skill is required"),
                "{}",
                d.reason
            );
        }
        let d = pick(
            &[],
            &[with_load(moderator("m", &[]), 1, Some(1)), admin("a")],
        );
        assert_eq!(d.assignee.as_deref(), Some("a"));
        assert!(
            d.reason.starts_with("No moderator has capacity left"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn duplicate_and_unknown_required_skills() {
        let cands = [
            moderator("sf", &["Salesforce admin"]),
            moderator("cobol", &["COBOL"]),
            admin("a"),
        ];
        let d = pick(&["COBOL", "cobol", " COBOL "], &cands);
        assert_eq!(d.assignee.as_deref(), Some("cobol"));
        assert_eq!(d.matched, vec!["COBOL"]);
        assert!(d.reason.contains("1 of 1 required skill:"), "{}", d.reason);
    }

    #[test]
    fn users_with_multiword_skill_strings() {
        let cands = [
            moderator("m", &["Senior backend engineer (REST APIs, Postgres)"]),
            admin("a"),
        ];
        let d = pick(&["Backend", "Database"], &cands);
        assert_eq!(d.assignee.as_deref(), Some("m"));
        assert_eq!(d.matched, vec!["Backend", "Database"]);
    }
}
