use super::{SqliteStore, parse_opt_ts, parse_ts, query_one, sql, ts};
use crate::store::{OutboxEvent, OutboxStore, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Row, params};

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxEvent> {
    let data: String = row.get(3)?;
    Ok(OutboxEvent {
        seq: row.get(0)?,
        id: row.get(1)?,
        name: row.get(2)?,
        data: serde_json::from_str(&data).map_err(|_| super::bad_value("event data", &data))?,
        created_at: parse_ts(&row.get::<_, String>(4)?)?,
        sent_at: parse_opt_ts(row.get(5)?)?,
    })
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, id, name, data, created_at, sent_at FROM outbox
                     WHERE sent_at IS NULL ORDER BY seq LIMIT ?1",
                )
                .map_err(sql)?;
            stmt.query_map([limit as i64], event_from_row)
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)
        })
        .await
    }

    async fn list_events(&self, after_seq: i64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, id, name, data, created_at, sent_at FROM outbox
                     WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(sql)?;
            stmt.query_map(params![after_seq, limit as i64], event_from_row)
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)
        })
        .await
    }

    async fn mark_sent(&self, ids: &[String]) -> StoreResult<()> {
        let ids = ids.to_vec();
        self.write(move |tx| {
            let now = ts(Utc::now());
            let mut stmt = tx
                .prepare_cached("UPDATE outbox SET sent_at = ?1 WHERE id = ?2 AND sent_at IS NULL")
                .map_err(sql)?;
            for id in &ids {
                stmt.execute(params![now, id]).map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn outbox_backlog(&self) -> StoreResult<u64> {
        self.read(|c| {
            query_one(
                c,
                "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql)
            .and_then(|n| u64::try_from(n).map_err(|e| StoreError::Other(e.into())))
        })
        .await
    }
}
