//! The embedded store: one SQLite file in WAL mode. rusqlite is synchronous, so every call runs
//! on the blocking pool: one writer connection (SQLite admits one writer at a time anyway, and
//! queuing here avoids `SQLITE_BUSY` churn) and a few reader connections that WAL lets run
//! beside it.

mod accounts;
mod activity;
mod attachments;
mod automation;
mod migrations;
mod outbox;
mod staff;
mod tickets;
mod users;

use super::{Store, StoreError, StoreResult};
use crate::domain::events::NewEvent;
use crate::sqlite_gate::WriteGate;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

const READERS: usize = 4;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Taken before `writer`: this file's writers, the executor's included, queue here.
    gate: Arc<WriteGate>,
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(crate::sqlite_gate::wait_for_lock))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Requests run the same statements over and over: keep them compiled. Without a stable
    // plan SQLite recompiles any statement with a bound LIMIT each time it runs.
    conn.set_prepared_statement_cache_capacity(64);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

/// `Connection::execute` through the statement cache.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `Connection::query_row` through the statement cache.
fn query_one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: impl Into<PathBuf>) -> StoreResult<Self> {
        let path = path.into();
        tokio::task::spawn_blocking(move || -> StoreResult<(Self, Connection)> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::private_fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            crate::private_fs::ensure_file(&path).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
            })?;
            let mut writer = open(&path).map_err(unavailable)?;
            migrations::run(&mut writer).map_err(unavailable)?;
            writer
                .pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(unavailable)?;
            let readers = (0..READERS)
                .map(|_| open(&path))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(unavailable)?;
            let checkpointer = open(&path).map_err(unavailable)?;
            let store = Self {
                inner: Arc::new(Inner {
                    gate: crate::sqlite_gate::for_file(&path),
                    path,
                    writer: Mutex::new(writer),
                    readers: Mutex::new(readers),
                    read_permits: Semaphore::new(READERS),
                }),
            };
            Ok((store, checkpointer))
        })
        .await
        .map_err(|e| StoreError::Other(e.into()))?
        .map(|(store, checkpointer)| {
            // Checkpoints are the gate's job (this file's writers all pass it), not SQLite's,
            // which would run one, fsync included, inside whichever commit crossed its threshold.
            store.inner.gate.keep_wal_short(checkpointer);
            store
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` inside an immediate write transaction that commits when `f` succeeds.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        // Held by the blocking task, so it is released when the write is done even if the
        // request that asked for it has gone.
        let turn = inner.gate.turn(crate::sqlite_gate::Lane::First).await;
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _turn = turn;
            let mut conn = inner
                .writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let out = f(&tx)?;
            tx.commit().map_err(sql)?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Other(e.into()))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        let out = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let conn = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("BUG: reader pool empty")))?;
            let out = f(&conn);
            inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            out
        })
        .await
        .map_err(|e| StoreError::Other(e.into()))?;
        drop(permit);
        out
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql))
            .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Maps SQLite errors; unique violations become `Conflict` naming the column.
fn sql(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(err, Some(msg)) = &e
        && err.code == rusqlite::ErrorCode::ConstraintViolation
        && msg.contains("UNIQUE")
    {
        let field = if msg.contains("email") {
            "email"
        } else if msg.contains("outbox.id") {
            "event id"
        } else {
            "id"
        };
        return StoreError::Conflict { field };
    }
    if let rusqlite::Error::SqliteFailure(err, _) = &e
        && matches!(
            err.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        )
    {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Other(e.into())
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    // Fixed width, so text order is time order.
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(raw: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn parse_opt_ts(raw: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    raw.as_deref().map(parse_ts).transpose()
}

fn bad_value(what: &str, raw: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unexpected {what} {raw:?}").into(),
    )
}

fn insert_event(tx: &Transaction<'_>, event: &NewEvent, now: DateTime<Utc>) -> StoreResult<()> {
    exec(
        tx,
        "INSERT INTO outbox (id, name, data, created_at) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![event.id, event.name, event.data.to_string(), ts(now)],
    )
    .map_err(sql)?;
    Ok(())
}

/// `LIKE` pattern matching `text` literally anywhere.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
