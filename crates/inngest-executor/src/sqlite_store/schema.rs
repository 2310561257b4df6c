//! The `inngest_` tables, and the one change made to files written before it.

use chrono::Utc;
use rusqlite::Connection;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inngest_events (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inngest_events_by_time ON inngest_events(received_at);
CREATE TABLE IF NOT EXISTS inngest_runs (
    id TEXT PRIMARY KEY,
    function_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    rev INTEGER NOT NULL,
    state TEXT NOT NULL,
    ended_at INTEGER
);
CREATE INDEX IF NOT EXISTS inngest_runs_by_function ON inngest_runs(function_id, status, id);
CREATE INDEX IF NOT EXISTS inngest_runs_by_status ON inngest_runs(status, id);
CREATE TABLE IF NOT EXISTS inngest_queue (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    run_id TEXT,
    kind TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    lease_until INTEGER,
    lease_token TEXT,
    concurrency TEXT NOT NULL,
    body TEXT NOT NULL
);
-- In claim order, and holding what a claim and the next wake-up read: they scan it alone,
-- without a sort or a look-up in the table per row.
DROP INDEX IF EXISTS inngest_queue_by_due;
CREATE INDEX IF NOT EXISTS inngest_queue_by_due_id ON inngest_queue(due_at, id, concurrency);
CREATE INDEX IF NOT EXISTS inngest_queue_by_run ON inngest_queue(run_id);
-- Leases are kept in memory now (see `leases.rs`); the columns stay for older files.
DROP INDEX IF EXISTS inngest_queue_by_lease;
CREATE TABLE IF NOT EXISTS inngest_pauses (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inngest_pauses_by_event ON inngest_pauses(event_name, expires_at);
CREATE INDEX IF NOT EXISTS inngest_pauses_by_run ON inngest_pauses(run_id);
";

/// Runs are swept by the time they finished. Files from before this column get it here; their
/// finished runs count as finished now, so they are kept one more retention period.
pub(super) fn add_ended_at(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('inngest_runs') WHERE name = 'ended_at'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE inngest_runs ADD COLUMN ended_at INTEGER")?;
        conn.execute(
            "UPDATE inngest_runs SET ended_at = ?1
             WHERE status IN ('completed', 'failed', 'cancelled')",
            [Utc::now().timestamp_millis()],
        )?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS inngest_runs_by_end ON inngest_runs(ended_at)
         WHERE ended_at IS NOT NULL",
    )
}
