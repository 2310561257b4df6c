-- The schema MIGRATIONS build, written by the test `the_schema_is_what_the_migrations_build`
-- (UPDATE_SCHEMA=1) from `SELECT sql FROM sqlite_master`; a new file gets it in one go.

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
    , last_assigned_at TEXT, open_tickets INTEGER NOT NULL DEFAULT 0, email_verified INTEGER NOT NULL DEFAULT 1, token_generation INTEGER NOT NULL DEFAULT 0);

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
    , triage TEXT, triage_source TEXT, routing_reason TEXT, assigned_at TEXT, sla_due_at TEXT, escalated_at TEXT, rating_score INTEGER, rating_comment TEXT, rated_at TEXT);

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

CREATE INDEX tickets_by_triage_source ON tickets (triage_source);

CREATE TABLE sent_mail (
        key       TEXT PRIMARY KEY,
        recipient TEXT NOT NULL,
        subject   TEXT NOT NULL,
        sent_at   TEXT NOT NULL
    );

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

CREATE TABLE account_tokens (
        hash       TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        purpose    TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );

CREATE INDEX account_tokens_by_user ON account_tokens (user_id, purpose);

CREATE INDEX account_tokens_by_expiry ON account_tokens (expires_at);

CREATE TABLE ticket_activity (
        id        TEXT PRIMARY KEY,
        ticket_id TEXT NOT NULL REFERENCES tickets (id),
        kind      TEXT NOT NULL,
        actor_id  TEXT REFERENCES users (id),
        data      TEXT NOT NULL,
        at        TEXT NOT NULL
    );

CREATE INDEX ticket_activity_by_ticket ON ticket_activity (ticket_id, id);

CREATE INDEX tickets_by_sla_due ON tickets (sla_due_at, id);

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
