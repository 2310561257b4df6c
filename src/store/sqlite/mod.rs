//! The embedded store: one SQLite file in WAL mode, opened, pooled and gated by the storage
//! toolkit (a writer connection behind the file's write gate, a few readers beside it).

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
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, Transaction};
use std::path::{Path, PathBuf};
use storage_kit::sqlite::{Database, Lane, Options};

/// Application data: requests wait on its writes, so they go before the executor's.
const OPTIONS: Options = Options {
    readers: 4,
    lane: Lane::First,
};

#[derive(Clone)]
pub struct SqliteStore {
    db: Database,
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
        let db = Database::open(path, OPTIONS, migrations::run)
            .await
            .map_err(|e| match e {
                storage_kit::sqlite::Error::Task(e) => StoreError::Other(e.into()),
                e => StoreError::Unavailable(e.to_string()),
            })?;
        Ok(Self { db })
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Runs `f` inside an immediate write transaction that commits when `f` succeeds.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.db.write(f).await
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.db.read(f).await
    }

    /// A read of a few rows found by key: see [`storage_kit::sqlite::Database::lookup`].
    async fn lookup<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.db.lookup(f).await
    }
}

impl From<storage_kit::sqlite::Error> for StoreError {
    fn from(e: storage_kit::sqlite::Error) -> Self {
        match e {
            storage_kit::sqlite::Error::Sqlite(e) => sql(e),
            storage_kit::sqlite::Error::Create { .. } => StoreError::Unavailable(e.to_string()),
            storage_kit::sqlite::Error::Task(e) => StoreError::Other(e.into()),
            storage_kit::sqlite::Error::Panicked(message) => {
                StoreError::Other(anyhow::anyhow!("a store write panicked: {message}"))
            }
            e @ (storage_kit::sqlite::Error::NotCommitted(_)
            | storage_kit::sqlite::Error::Dropped) => StoreError::Unavailable(e.to_string()),
        }
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
