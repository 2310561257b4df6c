//! The figures of `GET /api/stats`, one grouping query each.

use crate::store::sqlite::{query_one, sql, ts};
use crate::store::{Count, Satisfaction, Stats, StoreResult};
use chrono::Utc;
use rusqlite::Connection;

pub(super) fn read(c: &Connection) -> StoreResult<Stats> {
    let now = Utc::now();
    let since = ts(crate::store::model::per_day_since(now));
    let total: i64 = query_one(c, "SELECT COUNT(*) FROM tickets", [], |r| r.get(0)).map_err(sql)?;
    Ok(Stats {
        total: total as u64,
        by_status: counts(
            c,
            "SELECT status, COUNT(*) FROM tickets GROUP BY status ORDER BY status",
        )?,
        by_priority: counts(
            c,
            "SELECT priority, COUNT(*) FROM tickets GROUP BY priority ORDER BY priority",
        )?,
        by_category: counts(
            c,
            "SELECT category, COUNT(*) FROM tickets GROUP BY category ORDER BY category",
        )?,
        by_assignee: counts(
            c,
            "SELECT COALESCE(assigned_to, 'unassigned'), COUNT(*) FROM tickets
             GROUP BY assigned_to ORDER BY assigned_to",
        )?,
        by_triage_status: counts(
            c,
            "SELECT triage_status, COUNT(*) FROM tickets GROUP BY triage_status ORDER BY triage_status",
        )?,
        by_triage_source: counts(
            c,
            "SELECT triage_source, COUNT(*) FROM tickets GROUP BY triage_source ORDER BY triage_source",
        )?,
        avg_first_response_secs: query_one(
            c,
            "SELECT AVG((julianday(first_response_at) - julianday(created_at)) * 86400.0)
             FROM tickets WHERE first_response_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?,
        avg_resolution_secs: query_one(
            c,
            "SELECT AVG((julianday(resolved_at) - julianday(created_at)) * 86400.0)
             FROM tickets WHERE resolved_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?,
        sla_breaches: query_one(
            c,
            "SELECT COUNT(*) FROM tickets WHERE escalated_at IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql)? as u64,
        moderator_load: crate::store::sqlite::automation::staff_loads(c)?
            .into_iter()
            .map(|s| crate::store::Load {
                user_id: s.id,
                email: s.email,
                role: s.role,
                open_tickets: u64::from(s.open_tickets),
                capacity: s.capacity,
            })
            .collect(),
        satisfaction: Satisfaction::from_scores(&pairs(
            c,
            "SELECT rating_score, COUNT(*) FROM tickets WHERE rating_score IS NOT NULL
             GROUP BY rating_score",
            [],
        )?),
        per_day: crate::store::model::per_day(
            now,
            &pairs(
                c,
                "SELECT substr(created_at, 1, 10), COUNT(*) FROM tickets
                 WHERE created_at >= ?1 GROUP BY 1",
                [&since],
            )?,
            &pairs(
                c,
                "SELECT substr(resolved_at, 1, 10), COUNT(*) FROM tickets
                 WHERE resolved_at >= ?1 GROUP BY 1",
                [&since],
            )?,
        ),
    })
}

fn counts(conn: &Connection, sql_text: &str) -> StoreResult<Vec<Count>> {
    let mut stmt = conn.prepare_cached(sql_text).map_err(sql)?;
    stmt.query_map([], |r| {
        Ok(Count {
            key: r
                .get::<_, Option<String>>(0)?
                .unwrap_or_else(|| "none".into()),
            count: r.get::<_, i64>(1)? as u64,
        })
    })
    .map_err(sql)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(sql)
}

/// (key, count) rows of a grouping query.
fn pairs<K: rusqlite::types::FromSql>(
    conn: &Connection,
    sql_text: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<(K, u64)>> {
    let mut stmt = conn.prepare_cached(sql_text).map_err(sql)?;
    stmt.query_map(params, |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)
}
