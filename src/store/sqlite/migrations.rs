//! Schema versions, applied in order and recorded in `PRAGMA user_version`. Append only: a
//! released migration is never edited. A new file gets the result in one go, [`SCHEMA`].

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: accounts, tickets, comments and the outbox.
    r#"
    CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE,
        name          TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL,
        skills        TEXT NOT NULL DEFAULT '[]',
        capacity      INTEGER,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE INDEX users_by_role ON users (role, id);

    CREATE TABLE tickets (
        id                TEXT PRIMARY KEY,
        title             TEXT NOT NULL,
        description       TEXT NOT NULL,
        status            TEXT NOT NULL,
        priority          TEXT NOT NULL,
        category          TEXT,
        created_by        TEXT NOT NULL REFERENCES users (id),
        assigned_to       TEXT REFERENCES users (id),
        triage_status     TEXT NOT NULL,
        priority_locked   INTEGER NOT NULL DEFAULT 0,
        version           INTEGER NOT NULL DEFAULT 1,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        first_response_at TEXT,
        resolved_at       TEXT
    );
    CREATE INDEX tickets_by_creator  ON tickets (created_by, id);
    CREATE INDEX tickets_by_assignee ON tickets (assigned_to, id);
    CREATE INDEX tickets_by_status   ON tickets (status, id);
    CREATE INDEX tickets_by_priority ON tickets (priority, id);
    CREATE INDEX tickets_by_category ON tickets (category, id);

    CREATE TABLE comments (
        id         TEXT PRIMARY KEY,
        ticket_id  TEXT NOT NULL REFERENCES tickets (id),
        author_id  TEXT NOT NULL REFERENCES users (id),
        body       TEXT NOT NULL,
        internal   INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX comments_by_ticket ON comments (ticket_id, id);

    CREATE TABLE outbox (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT NOT NULL UNIQUE,
        name       TEXT NOT NULL,
        data       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sent_at    TEXT
    );
    CREATE INDEX outbox_pending ON outbox (seq) WHERE sent_at IS NULL;
    "#,
    // 2: triage, routing and SLA on tickets; the record of sent mail.
    r#"
    ALTER TABLE tickets ADD COLUMN triage TEXT;
    ALTER TABLE tickets ADD COLUMN triage_source TEXT;
    ALTER TABLE tickets ADD COLUMN routing_reason TEXT;
    ALTER TABLE tickets ADD COLUMN assigned_at TEXT;
    ALTER TABLE tickets ADD COLUMN sla_due_at TEXT;
    ALTER TABLE tickets ADD COLUMN escalated_at TEXT;
    ALTER TABLE users ADD COLUMN last_assigned_at TEXT;
    CREATE INDEX tickets_by_triage_source ON tickets (triage_source);

    CREATE TABLE sent_mail (
        key       TEXT PRIMARY KEY,
        recipient TEXT NOT NULL,
        subject   TEXT NOT NULL,
        sent_at   TEXT NOT NULL
    );
    "#,
    // 3: routing counts each moderator's open tickets for every new ticket; this answers it from
    // the index instead of reading every ticket they were ever assigned.
    r#"
    CREATE INDEX tickets_by_assignee_status ON tickets (assigned_to, status);
    "#,
    // 4: each person's open tickets, kept by triggers. Routing reads everyone's load for every
    // new ticket; counting them, even from an index, grew with the backlog.
    r#"
    ALTER TABLE users ADD COLUMN open_tickets INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET open_tickets = (
        SELECT COUNT(*) FROM tickets t
        WHERE t.assigned_to = users.id AND t.status IN ('open', 'in_progress'));

    CREATE TRIGGER tickets_open_on_insert AFTER INSERT ON tickets
    WHEN NEW.assigned_to IS NOT NULL AND NEW.status IN ('open', 'in_progress')
    BEGIN
        UPDATE users SET open_tickets = open_tickets + 1 WHERE id = NEW.assigned_to;
    END;
    CREATE TRIGGER tickets_open_on_update AFTER UPDATE OF assigned_to, status ON tickets
    BEGIN
        UPDATE users SET open_tickets = open_tickets - 1
        WHERE id = OLD.assigned_to AND OLD.status IN ('open', 'in_progress');
        UPDATE users SET open_tickets = open_tickets + 1
        WHERE id = NEW.assigned_to AND NEW.status IN ('open', 'in_progress');
    END;
    CREATE TRIGGER tickets_open_on_delete AFTER DELETE ON tickets
    WHEN OLD.assigned_to IS NOT NULL AND OLD.status IN ('open', 'in_progress')
    BEGIN
        UPDATE users SET open_tickets = open_tickets - 1 WHERE id = OLD.assigned_to;
    END;
    DROP INDEX tickets_by_assignee_status;
    "#,
    // 5: accounts people can recover and end. Existing accounts count as verified (the default);
    // one-time links are kept as hashes only.
    r#"
    ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE account_tokens (
        hash       TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        purpose    TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX account_tokens_by_user ON account_tokens (user_id, purpose);
    CREATE INDEX account_tokens_by_expiry ON account_tokens (expires_at);
    "#,
    // 6: each ticket's activity log, written with every change; satisfaction ratings; the
    // moderator queue's order (soonest SLA deadline first).
    r#"
    CREATE TABLE ticket_activity (
        id        TEXT PRIMARY KEY,
        ticket_id TEXT NOT NULL REFERENCES tickets (id),
        kind      TEXT NOT NULL,
        actor_id  TEXT REFERENCES users (id),
        data      TEXT NOT NULL,
        at        TEXT NOT NULL
    );
    CREATE INDEX ticket_activity_by_ticket ON ticket_activity (ticket_id, id);

    ALTER TABLE tickets ADD COLUMN rating_score INTEGER;
    ALTER TABLE tickets ADD COLUMN rating_comment TEXT;
    ALTER TABLE tickets ADD COLUMN rated_at TEXT;
    CREATE INDEX tickets_by_sla_due ON tickets (sla_due_at, id);
    "#,
    // 7: files on tickets. The bytes are stored under their SHA-256, so records may share them;
    // the index on it answers "is anything still using these bytes" when one is deleted.
    r#"
    CREATE TABLE attachments (
        id           TEXT PRIMARY KEY,
        ticket_id    TEXT NOT NULL REFERENCES tickets (id),
        filename     TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size         INTEGER NOT NULL,
        sha256       TEXT NOT NULL,
        internal     INTEGER NOT NULL,
        uploaded_by  TEXT NOT NULL REFERENCES users (id),
        created_at   TEXT NOT NULL
    );
    CREATE INDEX attachments_by_ticket ON attachments (ticket_id, id);
    CREATE INDEX attachments_by_sha256 ON attachments (sha256);
    "#,
];

/// What [`MIGRATIONS`] build, as `sqlite_master` holds it after them. Applied one by one they
/// cost a new file about 5 ms, half of a first start: SQLite reads the whole schema again after
/// every `ALTER TABLE`. The test `the_schema_is_what_the_migrations_build` keeps the two equal
/// and writes this file anew when asked to.
const SCHEMA: &str = include_str!("schema.sql");

pub fn run(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current == 0 {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
        tx.commit()?;
        tracing::info!(version = MIGRATIONS.len(), "created the SQLite schema");
        return Ok(());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied SQLite migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    fn open_tickets(conn: &Connection) -> Vec<(String, i64)> {
        let mut stmt = conn
            .prepare("SELECT id, open_tickets FROM users ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn open_ticket_counts_start_from_existing_data_and_follow_every_change() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &super::MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, email, name, password_hash, role, skills, created_at, updated_at)
             VALUES ('a', 'a@x.io', '', 'h', 'moderator', '[]', 't', 't'),
                    ('b', 'b@x.io', '', 'h', 'moderator', '[]', 't', 't');
             INSERT INTO tickets (id, title, description, status, priority, created_by,
                                  assigned_to, triage_status, created_at, updated_at)
             VALUES ('1', 't', 'd', 'open', 'low', 'a', 'a', 'done', 't', 't'),
                    ('2', 't', 'd', 'in_progress', 'low', 'a', 'a', 'done', 't', 't'),
                    ('3', 't', 'd', 'resolved', 'low', 'a', 'a', 'done', 't', 't'),
                    ('4', 't', 'd', 'open', 'low', 'a', NULL, 'done', 't', 't');",
        )
        .unwrap();
        super::run(&mut conn).unwrap();
        assert_eq!(open_tickets(&conn), [("a".into(), 2), ("b".into(), 0)]);

        conn.execute_batch("UPDATE tickets SET assigned_to = 'b' WHERE id = '4'")
            .unwrap();
        assert_eq!(open_tickets(&conn), [("a".into(), 2), ("b".into(), 1)]);
        conn.execute_batch("UPDATE tickets SET status = 'closed' WHERE id = '1'")
            .unwrap();
        assert_eq!(open_tickets(&conn), [("a".into(), 1), ("b".into(), 1)]);
        conn.execute_batch("UPDATE tickets SET status = 'open' WHERE id = '3'")
            .unwrap();
        assert_eq!(open_tickets(&conn), [("a".into(), 2), ("b".into(), 1)]);
        conn.execute_batch(
            "UPDATE tickets SET assigned_to = 'b', status = 'in_progress' WHERE id = '2'",
        )
        .unwrap();
        assert_eq!(open_tickets(&conn), [("a".into(), 1), ("b".into(), 2)]);
        conn.execute_batch(
            "UPDATE tickets SET priority = 'high'; UPDATE tickets SET assigned_to = NULL WHERE id = '4'",
        )
        .unwrap();
        assert_eq!(open_tickets(&conn), [("a".into(), 1), ("b".into(), 1)]);
        conn.execute_batch(
            "INSERT INTO tickets (id, title, description, status, priority, created_by,
                                  assigned_to, triage_status, created_at, updated_at)
             VALUES ('5', 't', 'd', 'open', 'low', 'a', 'a', 'done', 't', 't');
             DELETE FROM tickets WHERE id = '2';",
        )
        .unwrap();
        assert_eq!(open_tickets(&conn), [("a".into(), 2), ("b".into(), 0)]);
    }

    #[test]
    fn accounts_from_before_verification_count_as_verified() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &super::MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, email, name, password_hash, role, skills, created_at, updated_at)
             VALUES ('a', 'a@x.io', '', 'h', 'user', '[]', 't', 't');",
        )
        .unwrap();
        super::run(&mut conn).unwrap();
        let (verified, generation): (bool, i64) = conn
            .query_row(
                "SELECT email_verified, token_generation FROM users WHERE id = 'a'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(verified);
        assert_eq!(generation, 0);
    }

    /// The schema's statements in the order they were made (so each can be made again).
    fn schema_of(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT sql FROM sqlite_master
                 WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_schema_is_what_the_migrations_build() {
        let stepwise = Connection::open_in_memory().unwrap();
        for sql in super::MIGRATIONS {
            stepwise.execute_batch(sql).unwrap();
        }
        let expected = schema_of(&stepwise);
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            let header = "-- The schema MIGRATIONS build, written by the test \
                          `the_schema_is_what_the_migrations_build`\n\
                          -- (UPDATE_SCHEMA=1) from `SELECT sql FROM sqlite_master`; a new file \
                          gets it in one go.\n\n";
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sqlite/schema.sql");
            std::fs::write(path, format!("{header}{};\n", expected.join(";\n\n"))).unwrap();
        }
        let mut at_once = Connection::open_in_memory().unwrap();
        super::run(&mut at_once).unwrap();
        assert_eq!(
            schema_of(&at_once),
            expected,
            "src/store/sqlite/schema.sql is not what MIGRATIONS build; after adding a migration, \
             write it anew with `UPDATE_SCHEMA=1 cargo test --lib the_schema_is_what`"
        );
        let version: i64 = at_once
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, super::MIGRATIONS.len());
    }

    #[test]
    fn migrations_apply_once() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::run(&mut conn).unwrap();
        super::run(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, super::MIGRATIONS.len());
    }
}
