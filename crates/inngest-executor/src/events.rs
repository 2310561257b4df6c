//! Incoming events: validation and the fields the server fills in (reference §6).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub const MAX_NAME_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("an event must be a JSON object")]
    NotAnObject,
    #[error("an event needs a non-empty string `name`")]
    MissingName,
    #[error("event name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("`data` must be an object")]
    BadData,
    #[error("`id` must be a string")]
    BadId,
}

/// Fills `id` (UUID v7), `ts` (now, in ms), `data` and `user` (`{}`) when missing.
pub fn normalize(event: Value, now: DateTime<Utc>) -> Result<Value, EventError> {
    let Value::Object(mut m) = event else {
        return Err(EventError::NotAnObject);
    };
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or(EventError::MissingName)?;
    if name.chars().count() > MAX_NAME_LEN {
        return Err(EventError::NameTooLong);
    }
    match m.get("data") {
        None | Some(Value::Null) => {
            m.insert("data".into(), Value::Object(Map::new()));
        }
        Some(Value::Object(_)) => {}
        Some(_) => return Err(EventError::BadData),
    }
    match m.get("id") {
        Some(Value::String(s)) if !s.is_empty() => {}
        None | Some(Value::Null) => {
            m.insert("id".into(), Value::String(uuid::Uuid::now_v7().to_string()));
        }
        Some(Value::String(_)) => {
            m.insert("id".into(), Value::String(uuid::Uuid::now_v7().to_string()));
        }
        Some(_) => return Err(EventError::BadId),
    }
    let ts_missing = m.get("ts").and_then(Value::as_i64).is_none_or(|t| t <= 0);
    if ts_missing {
        m.insert("ts".into(), Value::from(now.timestamp_millis()));
    }
    if !m.get("user").is_some_and(Value::is_object) {
        m.insert("user".into(), Value::Object(Map::new()));
    }
    Ok(Value::Object(m))
}

pub fn id_of(event: &Value) -> &str {
    event.get("id").and_then(Value::as_str).unwrap_or("")
}

pub fn name_of(event: &Value) -> &str {
    event.get("name").and_then(Value::as_str).unwrap_or("")
}

/// A deterministic id for the `index`-th event of a send that carried
/// `x-inngest-event-id-seed`, so a retried send gets the same ids and is deduplicated.
pub fn seeded_id(seed: &str, index: usize) -> String {
    let digest = Sha256::digest(format!("{seed}/{index}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_missing_fields() {
        let now = Utc::now();
        let ev = normalize(json!({"name": "app/x"}), now).expect("valid");
        assert_eq!(ev["data"], json!({}));
        assert_eq!(ev["user"], json!({}));
        assert_eq!(ev["ts"], json!(now.timestamp_millis()));
        assert_eq!(id_of(&ev).len(), 36);
        let kept = normalize(
            json!({"name": "app/x", "id": "abc", "ts": 5, "data": {"a": 1}}),
            now,
        )
        .expect("valid");
        assert_eq!(id_of(&kept), "abc");
        assert_eq!(kept["ts"], 5);
        assert_eq!(kept["data"]["a"], 1);
    }

    #[test]
    fn rejects_malformed_events() {
        let now = Utc::now();
        assert_eq!(normalize(json!([1]), now), Err(EventError::NotAnObject));
        assert_eq!(
            normalize(json!({"data": {}}), now),
            Err(EventError::MissingName)
        );
        assert_eq!(
            normalize(json!({"name": " "}), now),
            Err(EventError::MissingName)
        );
        assert_eq!(
            normalize(json!({"name": "x".repeat(513)}), now),
            Err(EventError::NameTooLong)
        );
        assert_eq!(
            normalize(json!({"name": "a", "data": [1]}), now),
            Err(EventError::BadData)
        );
        assert_eq!(
            normalize(json!({"name": "a", "id": 7}), now),
            Err(EventError::BadId)
        );
    }

    #[test]
    fn seeded_ids_are_stable_per_seed_and_index() {
        assert_eq!(
            seeded_id("1795356375321,abc", 0),
            seeded_id("1795356375321,abc", 0)
        );
        assert_ne!(
            seeded_id("1795356375321,abc", 0),
            seeded_id("1795356375321,abc", 1)
        );
        assert_ne!(
            seeded_id("1795356375321,abc", 0),
            seeded_id("1795356375321,abd", 0)
        );
    }
}
