"""The named queries both dialects run as written: plain SQL with ``:name`` parameters.

A backend's query table is this one plus its own dialect's queries (``SQLITE_QUERIES`` in
``dragon.database.sqlite``, ``POSTGRES_QUERIES`` in ``dragon.database.postgres``): sets of
values, RETURNING on claims, row locks, advisory locks and the task sequence differ there.
Which query runs when is decided once, in ``dragon.database.operations``.

No query names a store: whether a file is listed or counted is in its own ``listed`` and
``counted`` columns.
"""

from __future__ import annotations

TASK_COLUMNS = (
    "key, account_id, task_name, params, status, progress, result, error, error_code, "
    "queued_at, started_at, completed_at, attempts, owner, lane, stage, waiting_for"
)
DELIVERY_COLUMNS = (
    "o.id, o.task_key, o.account_id, o.url, o.body, o.webhook_id, o.attempts, o.next_at,"
    " o.state, o.last_status, o.last_error, o.created_at, a.webhook_secret,"
    " CASE WHEN a.previous_webhook_secret_until > :now THEN a.previous_webhook_secret END"
    " AS previous_webhook_secret"
)
# A page of an account's tasks, newest first: strictly before the cursor ``(queued_at, seq)``
# and from ``after`` on. Each filter has its own index ending in (queued_at, seq)
# (``tasks_listed``, ``tasks_account_status``, ``tasks_named``), so the page is one range
# of it. ``any_stage`` or else ``waiting``: whether the rows its node holds before their
# work begins (a stage set, shown as queued) are the ones wanted.
TASKS_PAGE = (
    f"SELECT {TASK_COLUMNS}, seq FROM tasks WHERE account_id = :account_id"
    " AND (queued_at, seq) < (:before_at, :before_seq) AND queued_at >= :after"
    " AND (:any_stage OR (stage IS NOT NULL) = :waiting)"
)
NEWEST_FIRST = " ORDER BY queued_at DESC, seq DESC LIMIT :limit"
# The overview of an account's tasks (its counts by status as documents show them, and of
# its errors by code), queued from ``after`` and before ``before``: each a walk of one
# index range (``tasks_account_status``). ``held``: executing rows whose work has not begun.
TASK_COUNTS = (
    "SELECT status, stage IS NOT NULL AS held, COUNT(*) AS n FROM tasks"
    " WHERE account_id = :account_id AND queued_at >= :after AND queued_at < :before"
)
ERROR_COUNTS = (
    "SELECT error_code, COUNT(*) AS n FROM tasks WHERE account_id = :account_id"
    " AND status = 'error' AND queued_at >= :after AND queued_at < :before"
)
OF_NAME = " AND task_name = :task_name"


def ended_slots(slot: str) -> dict[str, str]:
    """The queries of the account's tasks that ended from ``start`` to ``end``, by status and
    slot of ``bucket`` seconds (a walk of ``tasks_completed``), with ``slot`` the dialect's
    SQL for the slot's number (``floor((completed_at - :start) / :bucket)`` as an integer)."""
    ended = (
        f"SELECT {slot} AS slot, status, COUNT(*) AS n, AVG(completed_at - started_at) AS mean,"
        " MAX(completed_at - started_at) AS longest FROM tasks WHERE completed_at >= :start"
        " AND completed_at < :end AND account_id = :account_id"
    )
    return {
        "ended_slots": f"{ended} GROUP BY slot, status",
        "ended_slots_of_name": f"{ended}{OF_NAME} GROUP BY slot, status",
    }


DELIVERY_STATE_COLUMNS = (
    "task_key, url, state, attempts, next_at, last_status, last_error, webhook_id"
)

COMMON_QUERIES: dict[str, str] = {
    # -- accounts
    "insert_account": "INSERT INTO accounts (name, secret_hash, api_key, webhook_secret,"
    " referrers, max_active, create_rate, created_at) VALUES (:name, :secret_hash, :api_key,"
    " :webhook_secret, :referrers, :max_active, :create_rate, :created_at) RETURNING id",
    "insert_usage": "INSERT INTO usage (account_id, bytes) VALUES (:account_id, 0)",
    "update_account": "UPDATE accounts SET referrers = COALESCE(:referrers, referrers),"
    " max_active = COALESCE(:max_active, max_active),"
    " max_running = COALESCE(:max_running, max_running),"
    " create_rate = CASE WHEN :set_rate THEN :create_rate ELSE create_rate END"
    " WHERE name = :name",
    "account_by_secret_hash": "SELECT * FROM accounts WHERE secret_hash = :secret_hash",
    "account_by_api_key": "SELECT * FROM accounts WHERE api_key = :api_key",
    "account_by_id": "SELECT * FROM accounts WHERE id = :account_id",
    "account_by_name": "SELECT * FROM accounts WHERE name = :name",
    "accounts": "SELECT * FROM accounts ORDER BY id",
    "delete_account_deliveries": "DELETE FROM outbox"
    " WHERE account_id = (SELECT id FROM accounts WHERE name = :name)",
    "delete_account": "DELETE FROM accounts WHERE name = :name",
    "rotate_webhook_secret": "UPDATE accounts SET previous_webhook_secret = webhook_secret,"
    " previous_webhook_secret_until = :keep_old_until, webhook_secret = :secret"
    " WHERE name = :name",
    "set_expiration": "UPDATE accounts SET expiration_days = :days WHERE id = :account_id",
    # -- tasks
    "task": f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = :key",
    "set_progress": "UPDATE tasks SET progress = :progress"
    " WHERE key = :key AND status = 'executing'",
    "set_partial": "UPDATE tasks SET result = :result WHERE key = :key AND status = 'executing'",
    "count_ended_change": "UPDATE ended_changes SET count = count + 1",
    "count_end_again": "UPDATE ended_changes SET count = count + 1 WHERE EXISTS"
    " (SELECT 1 FROM tasks WHERE key = :key AND completed_at IS NOT NULL)",
    "ended_changes": "SELECT count FROM ended_changes",
    # A cancelled task stays cancelled: the run it stopped may still try to write its end.
    "finish_task": "UPDATE tasks SET status = :status, result = :result, error = :error,"
    " error_code = :error_code, completed_at = :completed_at, progress = NULL,"
    " started_at = CASE WHEN stage IS NULL THEN started_at END, stage = NULL,"
    " diagnostics = :diagnostics WHERE key = :key AND COALESCE(error_code, '') <> :cancelled"
    f" RETURNING {TASK_COLUMNS}",
    "requeue_task": "UPDATE tasks SET status = 'queued', progress = NULL, result = NULL,"
    " owner = NULL, stage = NULL WHERE key = :key AND status = 'executing'"
    f" RETURNING {TASK_COLUMNS}",
    # The task's work begins (its inputs are in, its slot is held): it was held by its node
    # as ``waiting`` (shown as queued) since its start.
    "begin_work": "UPDATE tasks SET stage = NULL, started_at = :now WHERE key = :key"
    f" AND status = 'executing' AND owner = :owner AND stage IS NOT NULL RETURNING {TASK_COLUMNS}",
    "tasks_page": TASKS_PAGE + NEWEST_FIRST,
    "tasks_page_of_status": f"{TASKS_PAGE} AND status = :status{NEWEST_FIRST}",
    "tasks_page_of_name": f"{TASKS_PAGE} AND task_name = :task_name{NEWEST_FIRST}",
    "task_counts": f"{TASK_COUNTS} GROUP BY status, held",
    "task_counts_of_name": f"{TASK_COUNTS}{OF_NAME} GROUP BY status, held",
    "error_counts": f"{ERROR_COUNTS} GROUP BY error_code",
    "error_counts_of_name": f"{ERROR_COUNTS}{OF_NAME} GROUP BY error_code",
    # -- chains: a task's inputs that are other tasks' outputs
    "insert_task_input": "INSERT INTO task_inputs (task_key, input_key)"
    " VALUES (:task_key, :input_key)",
    "set_waiting_for": "UPDATE tasks SET waiting_for = :waiting_for WHERE key = :key"
    f" RETURNING {TASK_COLUMNS}",
    "account_limits": "SELECT id, max_running FROM accounts WHERE max_running > 0",
    "ended_tasks": "SELECT key, status, completed_at FROM tasks"
    " WHERE completed_at < :ended_before LIMIT :limit",
    "count_active": "SELECT COUNT(*) FROM tasks"
    " WHERE account_id = :account_id AND status IN ('queued', 'executing')",
    "run_times": "SELECT completed_at - started_at AS took FROM tasks"
    " WHERE completed_at IS NOT NULL AND task_name = :task_name AND status = 'success'"
    " AND started_at IS NOT NULL ORDER BY completed_at DESC LIMIT :limit",
    # -- the event feed
    "events_after": "SELECT id, task_key, task_name, document FROM events"
    " WHERE account_id = :account_id AND id > :after ORDER BY id LIMIT :limit",
    "event_horizon": "SELECT pruned_through FROM event_horizon",
    "oldest_events": "SELECT id, created_at FROM events ORDER BY id LIMIT :limit",
    "delete_events_through": "DELETE FROM events WHERE id <= :last",
    # -- callback outbox
    "insert_delivery": "INSERT INTO outbox (task_key, account_id, url, body, webhook_id,"
    " next_at, created_at) VALUES (:task_key, :account_id, :url, :body, :webhook_id,"
    " :next_at, :created_at)",
    "next_delivery_time": "SELECT MIN(o.next_at) FROM outbox o"
    " JOIN accounts a ON a.id = o.account_id WHERE o.state = 'pending'",
    "record_delivery": "UPDATE outbox SET state = :state, attempts = :attempts,"
    " next_at = :next_at, last_status = :last_status, last_error = :last_error WHERE id = :id",
    # -- files and usage
    "delete_output_file": "DELETE FROM files WHERE task_key = :task_key AND output = :output"
    " RETURNING size, counted",
    "insert_file": "INSERT INTO files (account_id, task_key, output, name, store, location,"
    " url, size, content_type, created_at, expires_at, listed, counted) VALUES (:account_id,"
    " :task_key, :output, :name, :store, :location, :url, :size, :content_type, :created_at,"
    " :expires_at, :listed, :counted)",
    "add_usage": "UPDATE usage SET bytes = bytes + :bytes WHERE account_id = :account_id",
    "usage": "SELECT bytes FROM usage WHERE account_id = :account_id",
    "file_for_output": "SELECT * FROM files WHERE task_key = :task_key AND output = :output",
    "file_by_location": "SELECT * FROM files WHERE location = :location",
    "listed_files": "SELECT * FROM files WHERE account_id = :account_id AND listed = TRUE"
    " ORDER BY task_key, name",
    "listed_files_of_task": "SELECT * FROM files WHERE account_id = :account_id"
    " AND listed = TRUE AND task_key = :task_key ORDER BY task_key, name",
    "listed_directories": "SELECT DISTINCT task_key FROM files"
    " WHERE account_id = :account_id AND listed = TRUE ORDER BY task_key",
    "files_past_expiry": "SELECT * FROM files WHERE expires_at <= :now LIMIT :limit",
    "expiring_accounts": "SELECT id, expiration_days FROM accounts WHERE expiration_days > 0",
    "files_past_account_expiration": "SELECT * FROM files WHERE account_id = :account_id"
    " AND listed = TRUE AND created_at <= :created_before"
    " AND (expires_at IS NULL OR expires_at > :now) LIMIT :limit",
    # -- cancel
    # Every file a task recorded, whatever its store's policy (a cancel removes them all).
    "task_files": "SELECT * FROM files WHERE task_key = :task_key",
    # -- resumable uploads
    "pending_upload_bytes": "SELECT COALESCE(SUM(length), 0) FROM uploads"
    " WHERE account_id = :account_id AND completed_at IS NULL",
    "insert_upload": "INSERT INTO uploads (id, account_id, length, metadata, created_at,"
    " expires_at, multipart, parts) VALUES (:id, :account_id, :length, :metadata,"
    " :created_at, :expires_at, :multipart, :parts)",
    "upload": "SELECT * FROM uploads WHERE id = :id",
    # Only from the offset the writer started at: two writers of one upload cannot both
    # move it, and it never moves past its length.
    "advance_upload": "UPDATE uploads SET received = :received WHERE id = :id"
    " AND received = :offset AND completed_at IS NULL AND :received <= length RETURNING *",
    # An upload held in S3 parts: its offset, parts and pending object move together, from
    # the offset the writer started at (the same rule as ``advance_upload``); finishing it
    # (``complete_upload``) is a step of its own, once S3 has joined the parts.
    "store_upload_parts": "UPDATE uploads SET received = :received, parts = :parts,"
    " pending_key = :pending_key WHERE id = :id AND received = :offset"
    " AND completed_at IS NULL AND :received <= length RETURNING *",
    "number_upload_part": "UPDATE uploads SET next_part = next_part + 1 WHERE id = :id"
    " RETURNING next_part",
    "complete_upload": "UPDATE uploads SET completed_at = :now, expires_at = :kept_until"
    " WHERE id = :id AND completed_at IS NULL AND received = length RETURNING *",
    "expired_uploads": "SELECT * FROM uploads WHERE expires_at <= :now"
    " ORDER BY expires_at LIMIT :limit",
    # -- templates
    "put_template": "INSERT INTO templates (account_id, name, definition, created_at,"
    " updated_at) VALUES (:account_id, :name, :definition, :now, :now)"
    " ON CONFLICT (account_id, name) DO UPDATE SET definition = excluded.definition,"
    " updated_at = excluded.updated_at RETURNING *",
    "template": "SELECT * FROM templates WHERE account_id = :account_id AND name = :name",
    "templates": "SELECT * FROM templates WHERE account_id = :account_id ORDER BY name",
    "delete_template": "DELETE FROM templates WHERE account_id = :account_id AND name = :name",
}
