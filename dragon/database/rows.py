"""The rows the ``Database`` protocol returns, typed: one ``TypedDict`` per shape of result.

Both backends return plain dicts with exactly these keys, so callers read ``row["key"]``
as before and the type checker knows each column's type. ``params``, ``result``,
``error``, ``diagnostics`` and ``document`` hold JSON text, as the tables store them;
``referrers`` too. Times are seconds since the epoch.
"""

from __future__ import annotations

from typing import TypedDict


class AccountRow(TypedDict):
    id: int
    name: str
    secret_hash: bytes
    api_key: str
    webhook_secret: str
    referrers: str  # JSON list
    max_active: int
    expiration_days: int
    created_at: float
    previous_webhook_secret: str | None
    previous_webhook_secret_until: float | None
    create_rate: float | None
    max_running: int  # most tasks running at once on one node; 0: no limit


class TaskRow(TypedDict):
    key: str
    account_id: int
    task_name: str
    params: str
    status: str
    progress: float | None
    result: str | None
    error: str | None
    error_code: str | None
    queued_at: float
    started_at: float | None
    completed_at: float | None
    attempts: int
    owner: str | None
    lane: str | None  # light, interactive or batch; None for tasks created before lanes
    stage: str | None  # "waiting": its node holds it, its work has not begun (shown queued)
    waiting_for: str | None  # JSON list of the input tasks (chains) not ended yet; None: none


class ListedTaskRow(TaskRow):
    """A row of a page of an account's tasks: ``seq`` with ``queued_at`` is its place in the
    listing's order (the cursor of the next page)."""

    seq: int


class StatusCountRow(TypedDict):
    """How many of an account's tasks are in ``status``; ``held``: executing rows whose work
    has not begun (their documents say queued)."""

    status: str
    held: bool
    n: int


class ErrorCountRow(TypedDict):
    error_code: str | None
    n: int


class EndedSlotRow(TypedDict):
    """The tasks that ended in ``status`` in one slot of a timeline (numbered from 0), with
    the mean and longest of their run times (None when none of them ran)."""

    slot: int
    status: str
    n: int
    mean: float | None
    longest: float | None


class OverviewRows(TypedDict):
    """What ``Database.task_overview`` reads, each part as its query grouped it."""

    counts: list[StatusCountRow]
    errors: list[ErrorCountRow]
    ended: list[EndedSlotRow]


class TaskEndRow(TypedDict):
    """What a poll of cached documents reads: whether each task ended, and when."""

    key: str
    status: str
    completed_at: float | None


class FileRow(TypedDict):
    id: int
    account_id: int
    task_key: str
    output: str | None
    name: str
    store: str
    location: str
    url: str
    size: int
    content_type: str
    created_at: float
    expires_at: float | None
    listed: bool  # shown by the storage API (its store's ``listed``)
    counted: bool  # counted in the account's usage (its store's ``counted``)


class DeliveryRow(TypedDict):
    """A due callback delivery, with the account's webhook secrets to sign it."""

    id: int
    task_key: str
    account_id: int
    url: str
    body: bytes
    webhook_id: str
    attempts: int
    next_at: float
    state: str
    last_status: int | None
    last_error: str | None
    created_at: float
    webhook_secret: str
    previous_webhook_secret: str | None  # only while it still signs


class DeliveryStateRow(TypedDict):
    """Where a task's callback stands (``details=true``)."""

    task_key: str
    url: str
    state: str
    attempts: int
    next_at: float
    last_status: int | None
    last_error: str | None
    webhook_id: str


class TemplateRow(TypedDict):
    """A named video.create definition of an account, with ``{{field}}`` slots."""

    account_id: int
    name: str
    definition: str
    created_at: float
    updated_at: float  # the last time it was stored again under its name


class UploadRow(TypedDict):
    """A resumable upload (tus): how long it is, how much of it the server holds."""

    id: str  # the last segment of its URL (``upload:ID`` in a task's parameters)
    account_id: int
    length: int  # Upload-Length: the bytes it will have once finished
    received: int  # Upload-Offset: the bytes stored durably so far
    metadata: str | None  # the Upload-Metadata header as the client sent it
    created_at: float
    expires_at: float  # unfinished: when it is removed; finished: how long it is kept
    completed_at: float | None  # when its last byte was stored; None while unfinished
    multipart: str | None  # the S3 multipart upload holding it (None: the data folder's file)
    parts: str | None  # S3: JSON list of the parts stored, each [number, ETag, size]
    pending_key: str | None  # S3: the object holding the bytes past the parts, if any
    next_part: int  # S3: the last part number handed to a writer


class EventRow(TypedDict):
    id: int
    task_key: str
    task_name: str
    document: str
