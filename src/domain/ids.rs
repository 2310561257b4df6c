//! Identifiers are UUID v7 strings on every store: time-ordered, so ordering by id is ordering by
//! creation, which keeps cursors simple and identical on SQLite and MongoDB.

use uuid::Uuid;

pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// Accepts only the canonical hyphenated form, so one row never has two spellings.
pub fn parse_id(raw: &str) -> Option<String> {
    let id = Uuid::try_parse(raw).ok()?;
    let canonical = id.hyphenated().to_string();
    (canonical == raw).then_some(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered() {
        let a = new_id();
        let b = new_id();
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn only_canonical_ids_parse() {
        let id = new_id();
        assert_eq!(parse_id(&id).as_deref(), Some(id.as_str()));
        assert_eq!(parse_id(&id.to_uppercase()), None);
        assert_eq!(parse_id("not-an-id"), None);
        assert_eq!(parse_id("{\"$ne\":null}"), None);
    }
}
