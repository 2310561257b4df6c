//! Attachment records on SQLite.

use super::{SqliteStore, exec, parse_ts, query_one, sql, ts};
use crate::store::{
    AttachOutcome, Attachment, AttachmentStore, Detached, NewAttachment, StoreError, StoreResult,
};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{OptionalExtension, Row, params};

const COLUMNS: &str =
    "id, ticket_id, filename, content_type, size, sha256, internal, uploaded_by, created_at";

fn attachment_from_row(row: &Row<'_>) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        id: row.get(0)?,
        ticket_id: row.get(1)?,
        filename: row.get(2)?,
        content_type: row.get(3)?,
        size: row.get::<_, i64>(4)?.max(0) as u64,
        sha256: row.get(5)?,
        internal: row.get(6)?,
        uploaded_by: row.get(7)?,
        created_at: parse_ts(&row.get::<_, String>(8)?)?,
    })
}

#[async_trait]
impl AttachmentStore for SqliteStore {
    async fn add_attachment(
        &self,
        new: NewAttachment,
        max_per_ticket: usize,
    ) -> StoreResult<AttachOutcome> {
        self.write(move |tx| {
            // Writers take turns on one connection, so the count cannot change before the insert.
            let exists: Option<i64> = query_one(
                tx,
                "SELECT 1 FROM tickets WHERE id = ?1",
                [&new.ticket_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            let held: i64 = query_one(
                tx,
                "SELECT COUNT(*) FROM attachments WHERE ticket_id = ?1",
                [&new.ticket_id],
                |r| r.get(0),
            )
            .map_err(sql)?;
            if held as usize >= max_per_ticket {
                return Ok(AttachOutcome::TicketFull);
            }
            let size = i64::try_from(new.size)
                .map_err(|_| StoreError::Other(anyhow::anyhow!("file size out of range")))?;
            exec(
                tx,
                &format!("INSERT INTO attachments ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    new.id,
                    new.ticket_id,
                    new.filename,
                    new.content_type,
                    size,
                    new.sha256,
                    new.internal,
                    new.uploaded_by,
                    ts(Utc::now())
                ],
            )
            .map_err(sql)?;
            query_one(
                tx,
                &format!("SELECT {COLUMNS} FROM attachments WHERE id = ?1"),
                [&new.id],
                attachment_from_row,
            )
            .map(AttachOutcome::Added)
            .map_err(sql)
        })
        .await
    }

    async fn get_attachment(&self, id: &str) -> StoreResult<Option<Attachment>> {
        let id = id.to_owned();
        self.lookup(move |c| {
            query_one(
                c,
                &format!("SELECT {COLUMNS} FROM attachments WHERE id = ?1"),
                [&id],
                attachment_from_row,
            )
            .optional()
            .map_err(sql)
        })
        .await
    }

    async fn list_attachments(
        &self,
        ticket_id: &str,
        include_internal: bool,
    ) -> StoreResult<Vec<Attachment>> {
        let ticket_id = ticket_id.to_owned();
        self.lookup(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM attachments
                     WHERE ticket_id = ?1 AND (internal = 0 OR ?2) ORDER BY id"
                ))
                .map_err(sql)?;
            stmt.query_map(params![ticket_id, include_internal], attachment_from_row)
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)
        })
        .await
    }

    async fn delete_attachment(&self, id: &str) -> StoreResult<Option<Detached>> {
        let id = id.to_owned();
        self.write(move |tx| {
            let Some(attachment) = query_one(
                tx,
                &format!("SELECT {COLUMNS} FROM attachments WHERE id = ?1"),
                [&id],
                attachment_from_row,
            )
            .optional()
            .map_err(sql)?
            else {
                return Ok(None);
            };
            exec(tx, "DELETE FROM attachments WHERE id = ?1", [&id]).map_err(sql)?;
            let blob_still_used = blob_in_use(tx, &attachment.sha256)?;
            Ok(Some(Detached {
                attachment,
                blob_still_used,
            }))
        })
        .await
    }

    async fn blob_in_use(&self, sha256: &str) -> StoreResult<bool> {
        let sha256 = sha256.to_owned();
        self.read(move |c| blob_in_use(c, &sha256)).await
    }

    async fn blobs_in_use(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT DISTINCT sha256 FROM attachments")
                .map_err(sql)?;
            stmt.query_map([], |r| r.get(0))
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(sql)
        })
        .await
    }
}

fn blob_in_use(c: &rusqlite::Connection, sha256: &str) -> StoreResult<bool> {
    query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM attachments WHERE sha256 = ?1)",
        [sha256],
        |r| r.get(0),
    )
    .map_err(sql)
}
