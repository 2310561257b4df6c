//! Rows in and out: the statements shared by the store's transactions, and the conversions of
//! times, kinds and errors.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::state::RunState;
use crate::store::{ItemKind, Pause, QueueItem, StoreError, StoreResult};

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(v: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| corrupt(format!("bad timestamp {v}")))
}

pub(super) fn kind_name(kind: &ItemKind) -> &'static str {
    match kind {
        ItemKind::Call { .. } => "call",
        ItemKind::Resume { .. } => "resume",
        ItemKind::Publish { .. } => "publish",
        ItemKind::Cron { .. } => "cron",
        ItemKind::Cancel { .. } => "cancel",
    }
}

/// Runs `sql` through the connection's statement cache: every step runs the same few statements.
pub(super) fn exec(
    tx: &Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<usize> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(backend)
}

/// Whether the item was inserted: not when an item with its key is live.
pub(super) fn insert_item(tx: &Transaction<'_>, item: &QueueItem) -> StoreResult<bool> {
    let n = exec(
        tx,
        "INSERT INTO inngest_queue (id, key, run_id, kind, due_at, concurrency, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        params![
            item.id,
            item.key,
            item.run_id,
            kind_name(&item.kind),
            ms(item.due_at),
            serde_json::to_string(&item.concurrency).map_err(corrupt)?,
            serde_json::to_string(item).map_err(corrupt)?,
        ],
    )?;
    Ok(n == 1)
}

pub(super) fn insert_run(tx: &Transaction<'_>, run: &RunState) -> StoreResult<()> {
    exec(
        tx,
        "INSERT INTO inngest_runs (id, function_id, status, created_at, rev, state, ended_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        params![
            run.id,
            run.function_id,
            run.status.as_str(),
            ms(run.created_at),
            run.rev as i64,
            serde_json::to_string(run).map_err(corrupt)?,
            run.ended_at.map(ms),
        ],
    )?;
    Ok(())
}

/// Writes `run`, serialized as `state`, as its next revision, or fails with a conflict if the
/// stored one is not `run.rev`. The status and end time (and so their indexes) are written
/// only when they change, which is not at most steps. The `rev` column is the revision; the
/// one inside `state` (the revision it was loaded at) is never read.
pub(super) fn update_run(tx: &Transaction<'_>, run: &RunState, state: String) -> StoreResult<()> {
    let expected = run.rev as i64;
    let unchanged = tx
        .prepare_cached("SELECT status = ?2 AND ended_at IS ?3 FROM inngest_runs WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row(
                params![run.id, run.status.as_str(), run.ended_at.map(ms)],
                |r| r.get::<_, bool>(0),
            )
        })
        .optional()
        .map_err(backend)?;
    let next_rev = expected + 1;
    let n = match unchanged {
        None => 0,
        Some(true) => exec(
            tx,
            "UPDATE inngest_runs SET rev = ?1, state = ?2 WHERE id = ?3 AND rev = ?4",
            params![next_rev, state, run.id, expected],
        )?,
        Some(false) => exec(
            tx,
            "UPDATE inngest_runs SET status = ?1, rev = ?2, state = ?3, ended_at = ?4
             WHERE id = ?5 AND rev = ?6",
            params![
                run.status.as_str(),
                next_rev,
                state,
                run.ended_at.map(ms),
                run.id,
                expected
            ],
        )?,
    };
    if n != 1 {
        // The caller's error drops the transaction, which rolls back what it wrote before.
        return Err(StoreError::Conflict(run.id.clone()));
    }
    Ok(())
}

pub(super) fn insert_event(tx: &Transaction<'_>, id: &str, event: &Value) -> StoreResult<bool> {
    let name = event.get("name").and_then(Value::as_str).unwrap_or("");
    let n = exec(
        tx,
        "INSERT INTO inngest_events (id, name, received_at, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        params![id, name, Utc::now().timestamp_millis(), event.to_string()],
    )?;
    Ok(n == 1)
}

pub(super) fn insert_pause(tx: &Transaction<'_>, p: &Pause) -> StoreResult<()> {
    exec(
        tx,
        "INSERT INTO inngest_pauses (id, run_id, event_name, expires_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        params![
            p.id,
            p.run_id,
            p.event,
            ms(p.expires_at),
            serde_json::to_string(p).map_err(corrupt)?
        ],
    )?;
    Ok(())
}

pub(super) fn remove_key(tx: &Transaction<'_>, key: &str) -> StoreResult<()> {
    exec(tx, "DELETE FROM inngest_queue WHERE key = ?1", params![key])?;
    Ok(())
}

pub(super) fn read_item(body: &str) -> StoreResult<QueueItem> {
    serde_json::from_str(body).map_err(corrupt)
}
