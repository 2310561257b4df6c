//! The skills vocabulary: one canonical name per skill plus the synonyms people and models use
//! for it. Shared by triage normalization, the rules engine and moderator routing, so that a
//! ticket tagged "Database" reaches a moderator who wrote "Postgres".
//!
//! Matching is always done with regular expressions built from escaped terms
//! ([`regex::escape`]) and explicit boundaries, never from raw input: `(a+)+$` or `.*` in a
//! skill list is just text.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// At most this many skills are kept on a ticket.
pub const MAX_SKILLS: usize = 8;
/// Longest skill string kept (in characters).
pub const MAX_SKILL_LEN: usize = 40;

/// One skill of the vocabulary.
#[derive(Debug)]
pub struct SkillDef {
    /// The canonical name stored on tickets, e.g. `Database`.
    pub name: &'static str,
    /// Other names for the same skill, as written in skill lists ("Postgres", "SQL"). The
    /// canonical name always counts too.
    pub aliases: &'static [&'static str],
    /// Words and phrases in free ticket text that suggest the skill is needed. Kept apart from
    /// the aliases because some names are too ambiguous in prose ("go", "node", "spring").
    pub text_cues: &'static [&'static str],
}

/// The vocabulary, in the order skills are listed to the model. The skills themselves are data,
/// `skills.json` next to this file, compiled into the binary and read on first use.
pub const VOCABULARY: Vocabulary = Vocabulary;

/// Handle on the vocabulary: iterate it, or [`Vocabulary::iter`].
#[derive(Clone, Copy, Debug)]
pub struct Vocabulary;

impl Vocabulary {
    pub fn iter(self) -> std::slice::Iter<'static, SkillDef> {
        DEFS.iter()
    }
}

impl IntoIterator for Vocabulary {
    type Item = &'static SkillDef;
    type IntoIter = std::slice::Iter<'static, SkillDef>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One entry of `skills.json`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SkillEntry {
    name: &'static str,
    #[serde(borrow)]
    aliases: Vec<&'static str>,
    #[serde(borrow)]
    text_cues: Vec<&'static str>,
}

fn parse_vocabulary(json: &'static str) -> serde_json::Result<Vec<SkillDef>> {
    let entries: Vec<SkillEntry> = serde_json::from_str(json)?;
    // Read once per process; the slices live as long as the program, like the text they borrow.
    Ok(entries
        .into_iter()
        .map(|e| SkillDef {
            name: e.name,
            aliases: e.aliases.leak(),
            text_cues: e.text_cues.leak(),
        })
        .collect())
}

static DEFS: LazyLock<Vec<SkillDef>> = LazyLock::new(|| {
    parse_vocabulary(include_str!("skills.json"))
        .expect("BUG: skills.json is checked by vocabulary_data_is_valid")
});

/// Characters that glue onto a term: when one of these sits right before a term, the term is
/// part of a longer word ("JavaScript" must not count as "Java", "C++" not as "C").
const GLUE_BEFORE: &str = r"\p{Alphabetic}\p{Nd}_+#";
/// After a term digits are allowed ("Java8", "Python3", "Vue3"), letters and `+`/`#` are not.
const GLUE_AFTER: &str = r"\p{Alphabetic}_+#";

/// A case-insensitive regex pattern matching any of `terms` as a whole term. Each term is
/// escaped; inner whitespace matches any run of spaces, `-` or `_`. Returns `None` when no term
/// has visible content (an empty alternation would match everything).
pub fn term_pattern<'a>(terms: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut seen = HashSet::new();
    let mut alternatives: Vec<String> = Vec::new();
    for term in terms {
        let words: Vec<&str> = term.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let folded = words.join(" ").to_lowercase();
        if !seen.insert(folded) {
            continue;
        }
        let escaped: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
        alternatives.push(escaped.join(r"[\s_-]+"));
    }
    if alternatives.is_empty() {
        return None;
    }
    // Longest first, so the reported match is the most specific term ("react native" over
    // "react"); correctness does not depend on it.
    alternatives.sort_by_key(|a| std::cmp::Reverse(a.len()));
    Some(format!(
        r"(?i)(?:^|[^{GLUE_BEFORE}])(?:{})(?:$|[^{GLUE_AFTER}])",
        alternatives.join("|")
    ))
}

/// [`term_pattern`] compiled. `None` when there is nothing to match or the pattern exceeds the
/// regex size limit (only possible with absurdly long input).
pub fn term_regex<'a>(terms: impl IntoIterator<Item = &'a str>) -> Option<Regex> {
    let pattern = term_pattern(terms)?;
    match Regex::new(&pattern) {
        Ok(re) => Some(re),
        Err(err) => {
            tracing::warn!(error = %err, "skill pattern rejected");
            None
        }
    }
}

struct CompiledSkill {
    def: &'static SkillDef,
    /// Name + aliases: matches skill strings.
    aliases: Regex,
    /// Text cues: matches free text.
    cues: Regex,
}

/// Every skill's text cues, in vocabulary order: one pass over a text tells which skills it
/// mentions at all, and only their cues are counted.
static CUE_SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(COMPILED.iter().map(|c| c.cues.as_str()))
        .expect("BUG: vocabulary cue patterns must compile together")
});

static COMPILED: LazyLock<Vec<CompiledSkill>> = LazyLock::new(|| {
    VOCABULARY
        .iter()
        .map(|def| CompiledSkill {
            def,
            aliases: term_regex(std::iter::once(def.name).chain(def.aliases.iter().copied()))
                .expect("BUG: vocabulary alias pattern must compile"),
            cues: term_regex(def.text_cues.iter().copied())
                .expect("BUG: vocabulary cue pattern must compile"),
        })
        .collect()
});

/// Compiles the vocabulary's patterns now rather than on first use.
pub fn warm_up() {
    LazyLock::force(&COMPILED);
    LazyLock::force(&CUE_SET);
}

/// The skill whose canonical name is `name` (case-insensitive).
pub fn lookup(name: &str) -> Option<&'static SkillDef> {
    let name = name.trim();
    VOCABULARY
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The canonical skills a skill string refers to: "PostgreSQL" gives `Database`, "React and
/// Node.js" gives `Frontend` and `JavaScript`. Empty when the string names no known skill.
pub fn canonical_skills(raw: &str) -> Vec<&'static SkillDef> {
    if let Some(exact) = lookup(raw) {
        return vec![exact];
    }
    COMPILED
        .iter()
        .filter(|c| c.aliases.is_match(raw))
        .map(|c| c.def)
        .collect()
}

/// The skills whose text cues occur in `text`, with how many distinct cue occurrences were found
/// (a rough measure of evidence). Sorted by evidence, strongest first; ties keep vocabulary order.
pub fn skills_in_text(text: &str) -> Vec<(&'static SkillDef, usize)> {
    let mentioned = CUE_SET.matches(text);
    let mut found: Vec<(&'static SkillDef, usize)> = COMPILED
        .iter()
        .enumerate()
        .filter(|(i, _)| mentioned.matched(*i))
        .filter_map(|(_, c)| {
            let hits = count_matches(&c.cues, text);
            (hits > 0).then_some((c.def, hits))
        })
        .collect();
    found.sort_by_key(|(_, hits)| std::cmp::Reverse(*hits));
    found
}

/// Number of whole-term matches of a boundary pattern from [`term_pattern`] in `text`. The
/// pattern consumes the delimiter on each side, so plain `find_iter` would miss the second of
/// two terms separated by one character; each search restarts at the previous match's last char.
pub fn count_matches(re: &Regex, text: &str) -> usize {
    let mut count = 0;
    let mut start = 0;
    while start < text.len() {
        let Some(m) = re.find_at(text, start) else {
            break;
        };
        count += 1;
        let matched = m.as_str();
        let first_len = matched.chars().next().map_or(1, char::len_utf8);
        let last_len = matched.chars().next_back().map_or(1, char::len_utf8);
        start = (m.end() - last_len).max(m.start() + first_len);
    }
    count
}

/// Every term that counts as the skill `skill`: all names and aliases of the canonical skills it
/// refers to, or just the (cleaned) string itself when it names no known skill.
pub fn equivalent_terms(skill: &str) -> Vec<&str> {
    let defs = canonical_skills(skill);
    if defs.is_empty() {
        return vec![skill.trim()];
    }
    defs.iter()
        .flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()))
        .collect()
}

/// Tidies a free-form skill string: trims, collapses whitespace, drops control characters and
/// rejects strings that are empty, too long, contain no letter or digit, or use characters no
/// skill name needs (which keeps pattern-like text such as `(a+)+$` out of stored data).
pub fn clean_skill(raw: &str) -> Option<String> {
    let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() || collapsed.chars().count() > MAX_SKILL_LEN {
        return None;
    }
    let allowed = |c: char| c.is_alphanumeric() || " +#./-&_'".contains(c);
    if !collapsed.chars().all(allowed) || !collapsed.chars().any(char::is_alphanumeric) {
        return None;
    }
    Some(collapsed)
}

/// Normalizes a list of skill strings: known skills become their canonical names (one string
/// may yield several), unknown ones are kept cleaned; duplicates are removed case-insensitively,
/// order is kept, and at most [`MAX_SKILLS`] remain.
pub fn normalize_skills<I, S>(raw: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |s: String, out: &mut Vec<String>| {
        if out.len() < MAX_SKILLS && seen.insert(s.to_lowercase()) {
            out.push(s);
        }
    };
    for item in raw {
        let item = item.as_ref();
        let defs = canonical_skills(item);
        if defs.is_empty() {
            if let Some(cleaned) = clean_skill(item) {
                push(cleaned, &mut out);
            }
        } else {
            for def in defs {
                push(def.name.to_string(), &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(defs: Vec<&'static SkillDef>) -> Vec<&'static str> {
        defs.into_iter().map(|d| d.name).collect()
    }

    #[test]
    fn every_canonical_name_maps_to_itself_only() {
        for def in VOCABULARY {
            assert_eq!(
                names(canonical_skills(def.name)),
                vec![def.name],
                "{}",
                def.name
            );
            assert_eq!(
                names(canonical_skills(&def.name.to_uppercase())),
                vec![def.name],
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn every_alias_maps_to_its_skill() {
        for def in VOCABULARY {
            for alias in def.aliases {
                let found = names(canonical_skills(alias));
                assert!(found.contains(&def.name), "{alias} gave {found:?}");
            }
        }
    }

    #[test]
    fn the_cue_set_finds_exactly_the_skills_their_cues_find() {
        let mut texts: Vec<String> = VOCABULARY
            .iter()
            .flat_map(|d| {
                d.text_cues
                    .iter()
                    .map(|cue| format!("We have a {cue} problem."))
            })
            .collect();
        texts.push("Nothing to see here.".into());
        texts.push("The CSV export and the SSO login both fail".into());
        for text in &texts {
            let mentioned = CUE_SET.matches(text);
            for (i, c) in COMPILED.iter().enumerate() {
                assert_eq!(
                    mentioned.matched(i),
                    c.cues.is_match(text),
                    "{} in {text:?}",
                    c.def.name
                );
            }
        }
    }

    #[test]
    fn canonical_names_are_unique() {
        let mut seen = HashSet::new();
        for def in VOCABULARY {
            assert!(
                seen.insert(def.name.to_lowercase()),
                "duplicate {}",
                def.name
            );
        }
    }

    #[test]
    fn vocabulary_data_is_valid() {
        let defs = parse_vocabulary(include_str!("skills.json")).expect("skills.json parses");
        assert!(!defs.is_empty());
        let mut names_and_aliases = HashSet::new();
        for def in &defs {
            assert_eq!(
                clean_skill(def.name).as_deref(),
                Some(def.name),
                "{}",
                def.name
            );
            assert!(!def.text_cues.is_empty(), "{} has no text cues", def.name);
            for (kind, terms) in [("alias", def.aliases), ("cue", def.text_cues)] {
                let mut seen = HashSet::new();
                for term in terms {
                    assert!(
                        !term.is_empty() && term.trim() == *term && term.to_lowercase() == *term,
                        "{} {kind} {term:?} must be trimmed lower case",
                        def.name
                    );
                    assert!(seen.insert(*term), "{} repeats {kind} {term:?}", def.name);
                }
            }
            // An alias naming two skills would make skill lists ambiguous.
            for term in std::iter::once(def.name).chain(def.aliases.iter().copied()) {
                assert!(
                    names_and_aliases.insert(term.to_lowercase()),
                    "{term:?} names more than one skill"
                );
            }
            assert!(
                term_regex(std::iter::once(def.name).chain(def.aliases.iter().copied())).is_some()
            );
            assert!(term_regex(def.text_cues.iter().copied()).is_some());
        }
    }

    #[test]
    fn database_synonyms() {
        for s in [
            "SQL",
            "Postgres",
            "PostgreSQL",
            "MySQL",
            "MongoDB",
            "SQLite",
            "postgresql 15",
        ] {
            assert_eq!(names(canonical_skills(s)), vec!["Database"], "{s}");
        }
    }

    #[test]
    fn java_is_not_javascript() {
        assert_eq!(names(canonical_skills("Java")), vec!["Java"]);
        assert_eq!(names(canonical_skills("JavaScript")), vec!["JavaScript"]);
        assert_eq!(names(canonical_skills("Java 8")), vec!["Java"]);
        assert_eq!(names(canonical_skills("java8")), vec!["Java"]);
    }

    #[test]
    fn symbol_skills() {
        assert_eq!(names(canonical_skills("C++")), vec!["C++"]);
        assert_eq!(names(canonical_skills("c++17")), vec!["C++"]);
        assert_eq!(names(canonical_skills("C#")), vec![".NET"]);
        assert_eq!(names(canonical_skills(".NET")), vec![".NET"]);
        assert_eq!(names(canonical_skills("ASP.NET Core")), vec![".NET"]);
        assert!(canonical_skills("C").is_empty());
        assert!(canonical_skills("NET").is_empty());
        // "C#" must not be read as "C++" and vice versa
        assert!(!names(canonical_skills("C#")).contains(&"C++"));
    }

    #[test]
    fn multiword_and_composite_strings() {
        assert_eq!(names(canonical_skills("sql-server")), vec!["Database"]);
        assert_eq!(names(canonical_skills("Front End")), vec!["Frontend"]);
        let both = names(canonical_skills("React and Node.js"));
        assert!(
            both.contains(&"Frontend") && both.contains(&"JavaScript"),
            "{both:?}"
        );
    }

    #[test]
    fn hostile_strings_are_literal() {
        assert!(canonical_skills("(a+)+$").is_empty());
        assert!(canonical_skills(".*").is_empty());
        assert!(canonical_skills("[").is_empty());
        let re = term_regex([".*"]).unwrap();
        assert!(!re.is_match("anything"));
        assert!(re.is_match("skills: .* here"));
        let re = term_regex(["(a+)+$"]).unwrap();
        assert!(!re.is_match("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"));
        assert!(re.is_match("(a+)+$"));
    }

    #[test]
    fn empty_terms_never_match_everything() {
        assert!(term_pattern(["", "   "]).is_none());
        assert!(term_regex(Vec::<&str>::new()).is_none());
    }

    #[test]
    fn clean_skill_rules() {
        assert_eq!(
            clean_skill("  Machine   learning "),
            Some("Machine learning".into())
        );
        assert_eq!(clean_skill("C++"), Some("C++".into()));
        assert_eq!(clean_skill("(a+)+$"), None);
        assert_eq!(clean_skill(".*"), None);
        assert_eq!(clean_skill("--"), None);
        assert_eq!(clean_skill(""), None);
        assert_eq!(clean_skill(&"x".repeat(MAX_SKILL_LEN + 1)), None);
        assert_eq!(clean_skill("a\u{0}b"), None);
    }

    #[test]
    fn normalize_dedupes_and_caps() {
        let out = normalize_skills([
            "postgres",
            "MySQL",
            "COBOL",
            "cobol",
            "React",
            ".*",
            "Salesforce",
            "Python",
            "Java",
            "Rust",
            "Go",
            "PHP",
            "Ruby",
        ]);
        assert_eq!(
            out,
            vec![
                "Database",
                "COBOL",
                "Frontend",
                "Integrations",
                "Python",
                "Java",
                "Rust",
                "Go"
            ]
        );
        assert_eq!(out.len(), MAX_SKILLS);
    }

    #[test]
    fn cues_find_skills_in_prose() {
        let found = skills_in_text("Our Postgres query times out and the dashboard is slow");
        let found: Vec<&str> = found.iter().map(|(d, _)| d.name).collect();
        assert!(found.contains(&"Database"), "{found:?}");
        assert!(found.contains(&"Performance"), "{found:?}");
        assert!(found.contains(&"Reporting"), "{found:?}");
        // "go" and "spring" in prose are not programming skills
        let found = skills_in_text("Let's go ahead, this spring we will node the tree");
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn count_matches_counts_adjacent_terms() {
        let re = term_regex(["sql"]).unwrap();
        assert_eq!(count_matches(&re, "sql sql,sql"), 3);
        assert_eq!(count_matches(&re, "mysql nosql"), 0);
        assert_eq!(count_matches(&re, "sql"), 1);
        assert_eq!(count_matches(&re, ""), 0);
    }

    #[test]
    fn equivalent_terms_expand_known_skills_only() {
        let terms = equivalent_terms("Database");
        assert!(terms.contains(&"postgres") && terms.contains(&"Database"));
        assert_eq!(equivalent_terms(" COBOL "), vec!["COBOL"]);
    }
}
