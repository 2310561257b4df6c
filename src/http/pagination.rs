//! Opaque cursors: base64url of the last id seen (or, for tickets by SLA deadline, of that
//! deadline and id). A cursor that does not decode is a 400, as is one from another order.

use super::error::AppError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};

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

/// Marks a cursor of the SLA order, so it never decodes as an id (or an id as one of these).
const SLA_DUE_TAG: &str = "sla_due";

/// A cursor for the list by SLA deadline: the last ticket's deadline (if it had one) and id.
pub fn encode_sla_due(due: Option<DateTime<Utc>>, last_id: &str) -> String {
    let due = due
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(format!("{SLA_DUE_TAG}|{due}|{last_id}"))
}

/// Where a page of the list by SLA deadline ended.
#[derive(Debug, PartialEq)]
pub struct SlaDueCursor {
    /// The last ticket's deadline; `None`: it had none.
    pub due: Option<DateTime<Utc>>,
    pub id: String,
}

/// Reads a cursor of `encode_sla_due`.
pub fn decode_sla_due(cursor: Option<&str>) -> Result<Option<SlaDueCursor>, AppError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        AppError::bad_request(
            "invalid_cursor",
            "cursor is not one this server issued for sort=sla_due",
        )
    };
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let mut parts = text.splitn(3, '|');
    let (Some(SLA_DUE_TAG), Some(due), Some(id)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let due = match due {
        "" => None,
        raw => Some(
            DateTime::parse_from_rfc3339(raw)
                .map_err(|_| invalid())?
                .with_timezone(&Utc),
        ),
    };
    let id = crate::domain::parse_id(id).ok_or_else(invalid)?;
    Ok(Some(SlaDueCursor { due, id }))
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
    fn sla_cursors_round_trip_and_never_pass_for_id_cursors() {
        let id = crate::domain::new_id();
        let due = DateTime::parse_from_rfc3339("2024-05-01T12:30:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        for at in [Some(due), None] {
            let cursor = encode_sla_due(at, &id);
            assert_eq!(
                decode_sla_due(Some(&cursor)).unwrap(),
                Some(SlaDueCursor {
                    due: at,
                    id: id.clone()
                })
            );
            assert!(decode(Some(&cursor)).is_err());
        }
        assert!(decode_sla_due(Some(&encode(&id))).is_err());
        assert!(decode_sla_due(Some(&URL_SAFE_NO_PAD.encode("sla_due|soon|x"))).is_err());
        assert!(decode_sla_due(Some("!!!")).is_err());
        assert_eq!(decode_sla_due(Some("")).unwrap(), None);
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
        assert_eq!(limit(Some(100)).unwrap(), 100);
    }
}
