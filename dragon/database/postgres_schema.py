"""The PostgreSQL schema: the migrations that build it, in order (the one declared source).

``dragon.database.postgres.migrate`` runs those a database has not had yet (the
``schema_version`` table counts them). It holds the tables and columns of
``dragon.database.sqlite_schema`` (``tests/unit/test_database_schema.py`` checks it), in
PostgreSQL's types, plus ``nodes``: the heartbeats of the nodes sharing the database.
"""

from __future__ import annotations

# Each entry migrates the schema from version i to i + 1. Append; never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE accounts (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        secret_hash BYTEA NOT NULL UNIQUE,
        api_key TEXT NOT NULL UNIQUE,
        webhook_secret TEXT NOT NULL,
        referrers TEXT NOT NULL DEFAULT '[]',
        max_active INTEGER NOT NULL DEFAULT 0,
        expiration_days INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        previous_webhook_secret TEXT,
        previous_webhook_secret_until DOUBLE PRECISION,
        create_rate DOUBLE PRECISION
    );
    CREATE TABLE tasks (
        key TEXT PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_name TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL,
        progress DOUBLE PRECISION,
        result TEXT,
        error TEXT,
        error_code TEXT,
        queued_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        completed_at DOUBLE PRECISION,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        seq BIGSERIAL NOT NULL,
        diagnostics TEXT
    );
    CREATE INDEX tasks_active ON tasks(status, seq) WHERE status IN ('queued', 'executing');
    CREATE INDEX tasks_account ON tasks(account_id, status);
    CREATE INDEX tasks_completed ON tasks(completed_at) WHERE completed_at IS NOT NULL;
    CREATE TABLE files (
        id BIGSERIAL PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_key TEXT NOT NULL,
        output TEXT,
        name TEXT NOT NULL,
        store TEXT NOT NULL,
        location TEXT NOT NULL,
        url TEXT NOT NULL,
        size BIGINT NOT NULL,
        content_type TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        UNIQUE (task_key, name)
    );
    CREATE UNIQUE INDEX files_output ON files(task_key, output);
    CREATE INDEX files_account ON files(account_id, store, task_key);
    CREATE INDEX files_expiry ON files(expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX files_location ON files(location);
    CREATE INDEX files_url ON files(url);
    CREATE INDEX files_created ON files(account_id, store, created_at);
    CREATE TABLE usage (
        account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        bytes BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        task_key TEXT NOT NULL,
        account_id BIGINT NOT NULL,
        url TEXT NOT NULL,
        body BYTEA NOT NULL,
        webhook_id TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        last_status INTEGER,
        last_error TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX outbox_pending ON outbox(next_at) WHERE state = 'pending';
    CREATE INDEX outbox_task ON outbox(task_key);
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_key TEXT NOT NULL,
        task_name TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        document TEXT NOT NULL
    );
    CREATE INDEX events_account ON events(account_id, id);
    CREATE TABLE event_horizon (pruned_through BIGINT NOT NULL);
    INSERT INTO event_horizon (pruned_through) VALUES (0);
    CREATE TABLE nodes (
        owner TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL
    );
    """,
    # Bumped by every transaction that deletes tasks (retention, a deleted account) or
    # ends an ended task again: a poll answered from cached documents of ended tasks reads
    # this one number instead of their rows.
    """
    CREATE TABLE ended_changes (count BIGINT NOT NULL);
    INSERT INTO ended_changes (count) VALUES (0);
    """,
    # Store policy kept with each file: ``listed`` (the storage API shows it) and
    # ``counted`` (its size is in the account's usage), from the store's class when the file
    # is recorded. Files recorded before were listed and counted exactly when persistent.
    """
    ALTER TABLE files ADD COLUMN listed BOOLEAN NOT NULL DEFAULT FALSE,
        ADD COLUMN counted BOOLEAN NOT NULL DEFAULT FALSE;
    UPDATE files SET listed = (store = 'persistent'), counted = (store = 'persistent');
    DROP INDEX files_account;
    DROP INDEX files_created;
    CREATE INDEX files_listed ON files(account_id, listed, task_key);
    CREATE INDEX files_listed_created ON files(account_id, listed, created_at);
    """,
    # Classes of work: the lane a task runs in (light, interactive, batch), decided at its
    # create; the stage of a task its node holds before its work begins (``waiting``: shown
    # as queued); an account's most tasks running at once on one node (0: no limit).
    """
    ALTER TABLE tasks ADD COLUMN lane TEXT, ADD COLUMN stage TEXT;
    ALTER TABLE accounts ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;
    """,
    # Resumable uploads (tus, /v2/uploads): one row per upload, its bytes in the data
    # folder's ``uploads``; ``received`` is what is stored durably (the offset a client
    # resumes from); unfinished ones count against their account's limit, expired ones go.
    """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        length BIGINT NOT NULL,
        received BIGINT NOT NULL DEFAULT 0,
        metadata TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        completed_at DOUBLE PRECISION
    );
    CREATE INDEX uploads_account ON uploads(account_id, completed_at);
    CREATE INDEX uploads_expires ON uploads(expires_at);
    """,
    # An account's tasks listed newest first (GET /v2/tasks): one index per way of
    # filtering, each ending in (queued_at, seq), the listing's order and its cursor, so a
    # page is a range of one index whatever the history. The status one replaces
    # tasks_account (its prefix), so a status change still updates one account index.
    """
    DROP INDEX tasks_account;
    CREATE INDEX tasks_account_status ON tasks(account_id, status, queued_at, seq);
    CREATE INDEX tasks_listed ON tasks(account_id, queued_at, seq);
    CREATE INDEX tasks_named ON tasks(account_id, task_name, queued_at, seq);
    """,
    # Task chains: a task whose input is another task's output. ``task_inputs`` holds each
    # edge (the dependent, the producer), kept for the record; ``waiting_for`` (JSON list) the
    # producers that have not ended yet, NULL once none: a queued task is started only then.
    # A producer's end removes itself from its dependents' lists in the same transaction.
    """
    ALTER TABLE tasks ADD COLUMN waiting_for TEXT;
    CREATE TABLE task_inputs (
        task_key TEXT NOT NULL REFERENCES tasks(key) ON DELETE CASCADE,
        input_key TEXT NOT NULL,
        PRIMARY KEY (task_key, input_key)
    );
    CREATE INDEX task_inputs_input ON task_inputs(input_key);
    """,
    # Uploads on several nodes (S3): ``multipart`` is the S3 multipart upload that holds
    # the bytes (NULL: the file in the data folder), ``parts`` (JSON list of [number, ETag,
    # size]) the parts stored so far, ``pending_key`` the object with the bytes past them
    # (fewer than a part), ``next_part`` the last part number handed to a writer, so two
    # writers of one upload never write the same part.
    """
    ALTER TABLE uploads ADD COLUMN multipart TEXT, ADD COLUMN parts TEXT,
        ADD COLUMN pending_key TEXT, ADD COLUMN next_part INTEGER NOT NULL DEFAULT 0;
    """,
    # Templates (``/v2/templates``): an account's named video.create definitions with
    # ``{{field}}`` slots, filled at create.
    """
    CREATE TABLE templates (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        definition TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    """,
)
