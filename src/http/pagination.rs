//! Opaque cursors: base64url of the last id seen. A cursor that does not decode is a 400.

use super::error::AppError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

pub fn encode(last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_id)
}

pub fn decode(cursor: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|id| crate::domain::parse_id(&id))
        .map(Some)
        .ok_or_else(|| {
            AppError::bad_request("invalid_cursor", "cursor is not one this server issued")
        })
}

pub fn limit(requested: Option<i64>) -> Result<usize, AppError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => Ok(n as usize),
        Some(_) => Err(AppError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = crate::domain::new_id();
        assert_eq!(decode(Some(&encode(&id))).unwrap(), Some(id));
        assert!(decode(Some("!!!")).is_err());
        assert!(decode(Some(&encode("not-an-id"))).is_err());
        assert_eq!(decode(Some("")).unwrap(), None);
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
        assert_eq!(limit(Some(100)).unwrap(), 100);
    }
}
