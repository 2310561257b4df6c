//! The activity log: rows appended inside the transaction of the change they record.

use super::{exec, parse_ts, sql, ts};
use crate::store::{Activity, ActivityEntry, NewActivity, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, params};

pub(super) fn append(
    tx: &Transaction<'_>,
    ticket_id: &str,
    entries: impl IntoIterator<Item = NewActivity>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    for entry in entries {
        let (kind, data) = entry.activity.into_parts();
        exec(
            tx,
            "INSERT INTO ticket_activity (id, ticket_id, kind, actor_id, data, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                entry.id,
                ticket_id,
                kind,
                entry.actor_id,
                data.to_string(),
                ts(at)
            ],
        )
        .map_err(sql)?;
    }
    Ok(())
}

pub(super) fn list(conn: &Connection, ticket_id: &str) -> StoreResult<Vec<ActivityEntry>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, ticket_id, kind, actor_id, data, at FROM ticket_activity
             WHERE ticket_id = ?1 ORDER BY id",
        )
        .map_err(sql)?;
    let rows = stmt
        .query_map([ticket_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                parse_ts(&r.get::<_, String>(5)?)?,
            ))
        })
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    rows.into_iter()
        .map(|(id, ticket_id, kind, actor_id, data, at)| {
            let data = serde_json::from_str(&data).map_err(|e| StoreError::Other(e.into()))?;
            let activity =
                Activity::from_parts(&kind, data).map_err(|e| StoreError::Other(e.into()))?;
            Ok(ActivityEntry {
                id,
                ticket_id,
                actor_id,
                activity,
                at,
            })
        })
        .collect()
}
