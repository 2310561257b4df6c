//! [`RunStore`] on SQLite. It opens its own connections to a database file (it can be the
//! application's own file: every table is prefixed `inngest_`) through the storage toolkit,
//! which queues its writes behind the application's at the file's write gate, and runs every
//! write inside `BEGIN IMMEDIATE` and every read inside a read transaction.

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;
use storage_kit::sqlite::{Database, Lane, Options};

use super::state::{RunState, RunStatus};
use super::store::{
    Claimed, Commit, Ingest, IngestOutcome, Lease, Pause, Picker, QueueDepth, QueueItem, RunFilter,
    RunStore, RunSummary, Slot, StoreError, StoreResult, Swept,
};

mod leases;
mod rows;
mod schema;

use leases::Leases;
use rows::{
    backend, corrupt, exec, from_ms, insert_event, insert_item, insert_pause, insert_run, ms,
    read_item, remove_key, update_run,
};
use schema::{SCHEMA, add_ended_at};

/// Reader connections: with WAL they read beside the writer, so claims, loading runs and
/// finding the next due item never queue behind commits. The executor's queue and run state
/// wait for the application's writes: nobody waits on a single one of them.
const OPTIONS: Options = Options {
    readers: 2,
    lane: Lane::Background,
};

pub struct SqliteRunStore {
    db: Database,
    leases: std::sync::Arc<Leases>,
}

impl std::fmt::Debug for SqliteRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRunStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl From<storage_kit::sqlite::Error> for StoreError {
    fn from(e: storage_kit::sqlite::Error) -> Self {
        backend(e)
    }
}

impl SqliteRunStore {
    /// Opens (or creates) the database file and the `inngest_` tables.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<SqliteRunStore> {
        // One transaction: on a new file each statement would otherwise commit on its own.
        let db = Database::open(path.as_ref(), OPTIONS, |conn| {
            let tx = conn.transaction()?;
            tx.execute_batch(SCHEMA)?;
            add_ended_at(&tx)?;
            tx.commit()
        })
        .await?;
        Ok(SqliteRunStore {
            db,
            leases: Default::default(),
        })
    }

    /// A write transaction: `BEGIN IMMEDIATE`, so it never fails halfway on a lock upgrade.
    async fn with_tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.db.write(f).await
    }

    /// A read-only transaction (`BEGIN DEFERRED`) on a reader connection.
    async fn with_read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.db.read_in_transaction(f).await
    }

    /// A commit, and the lease of `keep` (an item id and the lease's end) if it inserted that
    /// item.
    async fn commit_with(
        &self,
        c: Commit,
        keep: Option<(String, i64)>,
    ) -> StoreResult<Option<Lease>> {
        let kept_id = keep.as_ref().map(|(id, _)| id.clone());
        let done = c.done.clone();
        // Written here rather than on the one writer thread, which every commit waits for.
        let run_state = c
            .run
            .as_ref()
            .map(|run| serde_json::to_string(&**run).map_err(corrupt))
            .transpose()?;
        let leases = self.leases.clone();
        let committed = self
            .with_tx(move |tx| {
                if let Some(lease) = &c.done {
                    let n = if leases.holds(lease) {
                        exec(
                            tx,
                            "DELETE FROM inngest_queue WHERE id = ?1",
                            params![lease.item_id],
                        )?
                    } else {
                        0
                    };
                    if n != 1 {
                        return Err(StoreError::LeaseLost(lease.item_id.clone()));
                    }
                }
                if let Some((run, state)) = c.run.as_ref().zip(run_state) {
                    update_run(tx, run, state)?;
                }
                for run_id in &c.remove_run_work {
                    exec(
                        tx,
                        "DELETE FROM inngest_queue WHERE run_id = ?1 AND kind != 'publish'",
                        params![run_id],
                    )?;
                    exec(
                        tx,
                        "DELETE FROM inngest_pauses WHERE run_id = ?1",
                        params![run_id],
                    )?;
                }
                for key in &c.remove_items {
                    remove_key(tx, key)?;
                }
                for id in &c.remove_pauses {
                    exec(tx, "DELETE FROM inngest_pauses WHERE id = ?1", params![id])?;
                }
                for run in &c.new_runs {
                    insert_run(tx, run)?;
                }
                for ev in &c.events {
                    if let Some(id) = ev.get("id").and_then(Value::as_str) {
                        insert_event(tx, id, ev)?;
                    }
                }
                let mut kept = None;
                for item in &c.enqueue {
                    if insert_item(tx, item)? && keep.as_ref().is_some_and(|(id, _)| *id == item.id)
                    {
                        kept = Some(item);
                    }
                }
                for p in &c.pauses {
                    insert_pause(tx, p)?;
                }
                // Last, so nothing after it can fail and leave a lease on an item never inserted.
                Ok(kept.zip(keep).map(|(item, (_, until))| {
                    leases.keep(&item.id, until, ms(item.due_at), item.concurrency.clone())
                }))
            })
            .await;
        // Only once the item's deletion is committed: a claim that no longer sees the lease
        // must not see the item either. After a conflict the caller commits again with it.
        if let Some(lease) = &done
            && matches!(committed, Ok(_) | Err(StoreError::LeaseLost(_)))
        {
            self.leases.release(lease);
        }
        if committed.is_err()
            && let Some(id) = kept_id
        {
            // Leased inside a transaction that did not commit: the item does not exist.
            self.leases.forget(&id);
        }
        committed
    }
}

#[async_trait]
impl RunStore for SqliteRunStore {
    async fn ingest(&self, ingest: Ingest) -> StoreResult<IngestOutcome> {
        self.with_tx(move |tx| {
            if !insert_event(tx, &ingest.event_id, &ingest.event)? {
                return Ok(IngestOutcome::Duplicate);
            }
            for run in &ingest.runs {
                insert_run(tx, run)?;
            }
            for item in &ingest.items {
                insert_item(tx, item)?;
            }
            for p in &ingest.pauses {
                insert_pause(tx, p)?;
            }
            let mut resumed = 0;
            for (pause_id, item) in &ingest.resumes {
                let gone = exec(
                    tx,
                    "DELETE FROM inngest_pauses WHERE id = ?1",
                    params![pause_id],
                )?;
                if gone == 1 {
                    insert_item(tx, item)?;
                    resumed += 1;
                }
            }
            for key in &ingest.remove_items {
                remove_key(tx, key)?;
            }
            Ok(IngestOutcome::Accepted { resumed })
        })
        .await
    }

    async fn pauses_for(&self, event_name: &str, now: DateTime<Utc>) -> StoreResult<Vec<Pause>> {
        let name = event_name.to_string();
        self.with_read(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT body FROM inngest_pauses WHERE event_name = ?1 AND expires_at > ?2 ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![name, ms(now)], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            let mut out = Vec::new();
            for body in rows {
                out.push(serde_json::from_str(&body.map_err(backend)?).map_err(corrupt)?);
            }
            Ok(out)
        })
        .await
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        max: usize,
        lease_for: Duration,
    ) -> StoreResult<Vec<Claimed>> {
        let leases = self.leases.clone();
        // A read: the lease is kept in memory (see `leases`). The table stays locked while the
        // candidates are read, so two claims never pick the same item.
        self.with_read(move |tx| {
            let now_ms = ms(now);
            let mut held = leases.claiming(now_ms);
            let leased_slots = held.slots();
            // Ids and slots only, read in claim order until enough are picked: with a backlog
            // held back by a concurrency limit, most candidates are skipped, and only the
            // picked ones' bodies are read.
            let mut picker = Picker::new(leased_slots.iter(), max);
            {
                // At most this many: leased items are among them, and calls over their
                // concurrency limit are skipped.
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, concurrency FROM inngest_queue
                         WHERE due_at <= ?1 ORDER BY due_at, id LIMIT ?2",
                    )
                    .map_err(backend)?;
                let mut rows = stmt
                    .query(params![now_ms, (held.len() + max * 8 + 64) as i64])
                    .map_err(backend)?;
                while !picker.is_full() {
                    let Some(row) = rows.next().map_err(backend)? else {
                        break;
                    };
                    let id = row.get_ref(0).map_err(backend)?.as_str().map_err(backend)?;
                    if held.is_leased(id) {
                        continue;
                    }
                    let slots = row.get_ref(1).map_err(backend)?.as_str().map_err(backend)?;
                    // Most calls have no limit: skip the parse for them.
                    let slots: Vec<Slot> = if slots == "[]" {
                        Vec::new()
                    } else {
                        serde_json::from_str(slots).map_err(corrupt)?
                    };
                    if picker.fits(&slots) {
                        picker.pick(id, &slots);
                    }
                }
            }
            let picked = picker.into_picked();
            let until = ms(now + lease_for);
            let mut out = Vec::with_capacity(picked.len());
            let mut body = tx
                .prepare_cached("SELECT body FROM inngest_queue WHERE id = ?1")
                .map_err(backend)?;
            for id in picked {
                let body: String = body.query_row(params![id], |r| r.get(0)).map_err(backend)?;
                let item = read_item(&body)?;
                let due_at = ms(item.due_at);
                let lease = held.lease(&id, until, due_at, item.concurrency.clone());
                out.push(Claimed { item, lease });
            }
            Ok(out)
        })
        .await
    }

    async fn next_wake(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let (leased, lease_wake) = self.leases.snapshot(None);
        self.with_read(move |tx| {
            // The first unleased item in due order: leased ones come first at most.
            let mut stmt = tx
                .prepare_cached("SELECT id, due_at FROM inngest_queue ORDER BY due_at, id LIMIT ?1")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![(leased.len() + 1) as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(backend)?;
            let mut first = None;
            for row in rows {
                let (id, due_at) = row.map_err(backend)?;
                if !leased.contains(&id) {
                    first = Some(due_at);
                    break;
                }
            }
            let wake = match (first, lease_wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            wake.map(from_ms).transpose()
        })
        .await
    }

    async fn release_leases(&self) -> StoreResult<u64> {
        // Files written by versions that kept leases in the table may still hold some.
        let written = self
            .with_tx(|tx| {
                let n = exec(tx, "UPDATE inngest_queue SET lease_until = NULL, lease_token = NULL WHERE lease_token IS NOT NULL",
                    [],)?;
                Ok(n as u64)
            })
            .await?;
        Ok(written + self.leases.clear())
    }

    async fn load_run(&self, run_id: &str) -> StoreResult<Option<RunState>> {
        let id = run_id.to_string();
        self.with_read(move |tx| {
            let row: Option<(String, i64)> = tx
                .prepare_cached("SELECT state, rev FROM inngest_runs WHERE id = ?1")
                .and_then(|mut stmt| {
                    stmt.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(backend)?;
            row.map(|(state, rev)| {
                let mut run: RunState = serde_json::from_str(&state).map_err(corrupt)?;
                run.rev = rev as u64;
                Ok(run)
            })
            .transpose()
        })
        .await
    }

    async fn commit(&self, c: Commit) -> StoreResult<()> {
        self.commit_with(c, None).await.map(drop)
    }

    async fn commit_keeping(
        &self,
        c: Commit,
        keep: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<Lease>> {
        self.commit_with(c, Some((keep.to_owned(), ms(until))))
            .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunSummary>> {
        let f = filter.clone();
        self.with_read(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT state FROM inngest_runs
                     WHERE (?1 IS NULL OR function_id = ?1) AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR id < ?3)
                     ORDER BY id DESC LIMIT ?4",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![
                        f.function_id,
                        f.status.map(RunStatus::as_str),
                        f.before,
                        f.limit as i64
                    ],
                    |r| r.get::<_, String>(0),
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            for state in rows {
                let run: RunState =
                    serde_json::from_str(&state.map_err(backend)?).map_err(corrupt)?;
                out.push(RunSummary::of(&run));
            }
            Ok(out)
        })
        .await
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> StoreResult<QueueDepth> {
        let leased = self.leases.snapshot(Some(ms(now))).0.len() as u64;
        self.with_read(move |tx| {
            let (due, scheduled): (i64, i64) = tx
                .query_row(
                    "SELECT COALESCE(SUM(due_at <= ?1), 0), COALESCE(SUM(due_at > ?1), 0)
                     FROM inngest_queue",
                    params![ms(now)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(backend)?;
            // Leased items are due: they were when they were claimed.
            Ok(QueueDepth {
                leased,
                due: (due as u64).saturating_sub(leased),
                scheduled: scheduled as u64,
            })
        })
        .await
    }

    async fn enqueue(&self, items: Vec<QueueItem>) -> StoreResult<()> {
        self.with_tx(move |tx| {
            for item in &items {
                insert_item(tx, item)?;
            }
            Ok(())
        })
        .await
    }

    async fn sweep(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<Swept> {
        self.with_tx(move |tx| {
            let (cutoff, limit) = (ms(cutoff), limit as i64);
            let runs: Vec<String> = {
                let mut stmt = tx
                    .prepare_cached(
                        "DELETE FROM inngest_runs WHERE id IN (
                            SELECT id FROM inngest_runs
                            WHERE ended_at < ?1 AND status IN ('completed', 'failed', 'cancelled')
                            LIMIT ?2)
                         RETURNING id",
                    )
                    .map_err(backend)?;
                stmt.query_map(params![cutoff, limit], |r| r.get(0))
                    .map_err(backend)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(backend)?
            };
            for id in &runs {
                exec(
                    tx,
                    "DELETE FROM inngest_queue WHERE run_id = ?1 AND kind != 'publish'",
                    params![id],
                )?;
                exec(
                    tx,
                    "DELETE FROM inngest_pauses WHERE run_id = ?1",
                    params![id],
                )?;
            }
            let events = exec(
                tx,
                "DELETE FROM inngest_events WHERE id IN (
                    SELECT id FROM inngest_events WHERE received_at < ?1 LIMIT ?2)",
                params![cutoff, limit],
            )?;
            Ok(Swept {
                runs: runs.len() as u64,
                events: events as u64,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;
    use rusqlite::Connection;
    use std::sync::Arc;

    #[tokio::test]
    async fn sqlite_store_satisfies_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let base = dir.path().to_path_buf();
        contract::run_all(|| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = base.join(format!("store-{n}.db"));
            async move { Arc::new(SqliteRunStore::open(path).await.expect("open")) as Arc<dyn RunStore> }
        })
        .await;
    }

    fn runs_with(status: RunStatus) -> RunFilter {
        RunFilter {
            function_id: None,
            status: Some(status),
            before: None,
            limit: 10,
        }
    }

    /// A step's update skips the status and end columns when they did not change: those
    /// columns (what `ticketing runs list --status`, the sweep and their indexes read) must
    /// still follow the state, whichever process wrote it.
    #[tokio::test]
    async fn the_status_and_end_columns_follow_the_state_through_steps_and_other_writers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("runs.db");
        let executor = SqliteRunStore::open(&path).await.expect("open");
        let started = Utc::now() - Duration::hours(2);
        let run = RunState::new(
            "r1".into(),
            "app",
            "f",
            1,
            serde_json::json!({"id": "e1", "name": "x"}),
            started,
        );
        executor
            .commit(Commit {
                new_runs: vec![run],
                ..Commit::default()
            })
            .await
            .expect("start");

        // Two steps: the first changes the status, the second only the state.
        for (n, step) in ["first", "second"].into_iter().enumerate() {
            let mut run = executor.load_run("r1").await.expect("load").expect("run");
            assert_eq!(run.rev, n as u64);
            run.status = RunStatus::Running;
            run.stack.push(step.into());
            executor
                .commit(Commit {
                    run: Some(Arc::new(run)),
                    ..Commit::default()
                })
                .await
                .expect("step");
            let running = executor
                .list_runs(&runs_with(RunStatus::Running))
                .await
                .expect("list");
            assert_eq!(running.len(), 1, "after the {step} step");
        }
        let stepped = executor.load_run("r1").await.expect("load").expect("run");
        assert_eq!(stepped.rev, 2);
        assert_eq!(stepped.stack, vec!["first".to_string(), "second".into()]);

        // A step computed from an older revision changes nothing, columns included.
        let mut stale = stepped.clone();
        stale.rev = 1;
        stale.status = RunStatus::Completed;
        stale.ended_at = Some(Utc::now());
        let err = executor
            .commit(Commit {
                run: Some(Arc::new(stale)),
                ..Commit::default()
            })
            .await
            .expect_err("stale revision");
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let completed = executor
            .list_runs(&runs_with(RunStatus::Completed))
            .await
            .expect("list");
        assert!(completed.is_empty());

        // An operator's command in another process cancels it.
        let operator = SqliteRunStore::open(&path).await.expect("open again");
        let mut cancelled = operator.load_run("r1").await.expect("load").expect("run");
        let ended = Utc::now() - Duration::hours(1);
        cancelled.status = RunStatus::Cancelled;
        cancelled.ended_at = Some(ended);
        operator
            .commit(Commit {
                run: Some(Arc::new(cancelled)),
                ..Commit::default()
            })
            .await
            .expect("cancel");
        for store in [&executor, &operator] {
            let running = store
                .list_runs(&runs_with(RunStatus::Running))
                .await
                .expect("list");
            assert!(running.is_empty());
            let cancelled = store
                .list_runs(&runs_with(RunStatus::Cancelled))
                .await
                .expect("list");
            assert_eq!(cancelled.len(), 1);
        }

        // The end time reached its column too: the sweep keeps the run until its cutoff
        // passes that time, then removes it.
        let swept = executor
            .sweep(ended - Duration::minutes(1), 10)
            .await
            .expect("sweep");
        assert_eq!(swept.runs, 0);
        let swept = executor
            .sweep(ended + Duration::minutes(1), 10)
            .await
            .expect("sweep");
        assert_eq!(swept.runs, 1);
        assert_eq!(executor.load_run("r1").await.expect("load"), None);
    }

    #[tokio::test]
    async fn state_survives_reopening_and_shares_a_file_with_other_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.db");
        {
            let app = Connection::open(&path).expect("open");
            app.execute_batch(
                "CREATE TABLE tickets (id TEXT PRIMARY KEY); INSERT INTO tickets VALUES ('t1');",
            )
            .expect("app schema");
        }
        let run = RunState::new(
            "r1".into(),
            "app",
            "f",
            1,
            serde_json::json!({"id": "e1", "name": "x"}),
            Utc::now(),
        );
        {
            let store = SqliteRunStore::open(&path).await.expect("open");
            store
                .commit(Commit {
                    new_runs: vec![run.clone()],
                    ..Commit::default()
                })
                .await
                .expect("commit");
        }
        let reopened = SqliteRunStore::open(&path).await.expect("reopen");
        assert_eq!(reopened.load_run("r1").await.expect("load"), Some(run));
        let app = Connection::open(&path).expect("open");
        let n: i64 = app
            .query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0))
            .expect("query");
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn runs_finished_before_their_end_was_stored_count_as_finished_when_the_store_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.db");
        {
            // The table as an older version created it, with a finished run.
            let old = Connection::open(&path).expect("open");
            old.execute_batch(
                "CREATE TABLE inngest_runs (id TEXT PRIMARY KEY, function_id TEXT NOT NULL,
                    status TEXT NOT NULL, created_at INTEGER NOT NULL, rev INTEGER NOT NULL,
                    state TEXT NOT NULL);",
            )
            .expect("old schema");
            let mut run = RunState::new(
                "legacy".into(),
                "app",
                "f",
                1,
                serde_json::json!({"id": "e1", "name": "x"}),
                Utc::now() - Duration::days(90),
            );
            run.status = RunStatus::Completed;
            run.ended_at = Some(Utc::now() - Duration::days(90));
            old.execute(
                "INSERT INTO inngest_runs VALUES ('legacy', 'f', 'completed', 0, 0, ?1)",
                [serde_json::to_string(&run).expect("json")],
            )
            .expect("legacy run");
        }
        let store = SqliteRunStore::open(&path).await.expect("open");
        let now = Utc::now();
        let swept = store
            .sweep(now - Duration::minutes(1), 10)
            .await
            .expect("sweep");
        assert_eq!(
            swept.runs, 0,
            "kept one more retention period from the upgrade"
        );
        assert!(store.load_run("legacy").await.expect("load").is_some());
        let swept = store
            .sweep(now + Duration::minutes(1), 10)
            .await
            .expect("sweep");
        assert_eq!(swept.runs, 1);
        assert_eq!(store.load_run("legacy").await.expect("load"), None);
    }
}
