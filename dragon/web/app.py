"""The aiohttp application: routes, and the lifetimes of what the server owns.

``create_app(settings)`` creates nothing at import time. The database, the fetcher, the
process pool, the scheduler and the background senders are opened in ``cleanup_ctx``
order and closed in reverse, so tests and shutdown tear them down cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from dragon.api.openapi import PUBLIC, documented, json_answer, ref
from dragon.api.state import STATE, State, state
from dragon.config import Settings
from dragon.database import open_database
from dragon.database.interface import Busy
from dragon.engine import metrics
from dragon.engine.auth import Authenticator
from dragon.engine.bus import Bus
from dragon.engine.callbacks import CallbackSender
from dragon.engine.rate_limits import TokenBuckets
from dragon.engine.resumable import Uploads, UploadSources
from dragon.engine.scheduler import Load, Scheduler, clean_tmp
from dragon.engine.service import Service
from dragon.engine.storage import Storage
from dragon.engine.sweeper import Sweeper
from dragon.handlers import (
    api_docs,
    cancel,
    create_file,
    events,
    files,
    storage,
    task_list,
    tasks,
    templates,
    tus,
)
from dragon.handlers.errors import DATABASE_HEALTH, DatabaseHealth
from dragon.net.fetcher import Fetcher
from dragon.runtime import disk
from dragon.runtime.pool import WorkerPool
from dragon.runtime.processes import set_tool_memory, set_tool_nice
from dragon.stores import Stores
from dragon.stores.backends import Backend, LocalBackend
from dragon.stores.s3 import S3Backend
from dragon.tasks import load_tasks
from dragon.web import dashboard
from dragon.web.connections import connection_limit, streams_per_account
from dragon.web.frame import Routes
from dragon.web.http_metrics import serve_metrics

log = logging.getLogger("dragon")

HEALTH_PROBE_SECONDS = 3.0  # a database slower than this to answer a read is unavailable


def setup_routes(app: web.Application) -> None:
    r = Routes(app.router)
    for v in ("v1", "v2"):
        r.post(f"/{v}/create", tasks.create)
        r.post(f"/{v}/create_stream", tasks.create_stream)
        for path in (f"/{v}/status",):
            r.get(path, tasks.status)
            r.post(path, tasks.status)
        for path in (f"/{v}/status_stream", f"/{v}/stream"):
            r.get(path, tasks.status_stream)
            r.post(path, tasks.status_stream)
        r.post(f"/{v}/cancel", cancel.cancel)
        # ``{filename}`` may be empty: ``/v1/create_file/`` for a task with one output.
        for path in (f"/{v}/create_file", f"/{v}/create_file/{{filename:[^/]*}}"):
            r.get(path, create_file.create_file)
            r.post(path, create_file.create_file)
        for path in (f"/{v}/file", f"/{v}/file/{{filename:[^/]*}}"):
            r.get(path, create_file.file)
    create_file.setup(app)
    r.get("/storage/{location:.+}", files.serve_file)
    for prefix in ("/v2/storage/files", "/v2/storage/files/{path:.*}"):
        r.get(prefix, storage.list_files)
        r.delete(prefix, storage.delete_files)
    r.get("/v2/storage/expiration", storage.expiration)
    r.post("/v2/storage/expiration", storage.expiration)
    for method, path, handler in tus.ROUTES:
        r.add(method, path, handler)
    r.get("/healthz", healthz)
    api_docs.setup(app)
    r.get("/openapi.json", api_docs.openapi_json)
    r.get("/docs", api_docs.docs_page)
    r.get("/docs/", api_docs.docs_slash)
    r.get("/docs/{asset}", api_docs.docs_asset)
    r.get("/metrics", serve_metrics)
    r.get("/v2/events", events.events)
    r.get("/v2/tasks", task_list.list_tasks)
    r.get("/v2/tasks/summary", task_list.summary)
    r.post("/v2/templates", templates.put_template)
    r.get("/v2/templates", templates.list_templates)
    r.get("/v2/templates/{name}", templates.template)
    r.delete("/v2/templates/{name}", templates.template)
    dashboard.setup(r)
    r.close()


@documented(
    {
        "summary": "Liveness and queue depth",
        "operationId": "healthz",
        "tags": ["server"],
        "security": PUBLIC,
        "responses": {
            "200": json_answer(ref("Health")),
            "503": json_answer(ref("Health"), "cannot take tasks: problems says why"),
        },
    }
)
async def healthz(request: web.Request) -> web.Response:
    """200 while the server can take tasks; 503 naming the ``problems`` when it cannot."""
    scheduler: Load = state(request).scheduler
    problems = []
    if database_read_only(request):
        problems.append("the database is read-only")
    elif not await database_answers(request):
        problems.append("the database is unavailable")
    shortage = disk.shortage(state(request).settings)
    if shortage:
        problems.append(shortage)
    status = "degraded" if problems else "ok"
    return web.json_response(
        {
            "status": "closing" if state(request).service.closing.is_set() else status,
            "problems": problems,
            "queued": scheduler.queued_count(),
            "executing": scheduler.executing_count(),
            "subscribers": state(request).bus.subscribers(),
        },
        status=503 if problems else 200,
    )


def database_read_only(request: web.Request) -> bool:
    """The database file or its folder cannot be written, or a write just failed so."""
    settings = state(request).settings
    if settings.database_url:  # PostgreSQL: a lost connection is a 503 per request (Busy)
        return request.app[DATABASE_HEALTH].recently_read_only()
    return (
        not os.access(settings.db_path, os.W_OK)
        or not os.access(settings.data_path, os.W_OK)
        or request.app[DATABASE_HEALTH].recently_read_only()
    )


async def database_answers(request: web.Request) -> bool:
    """PostgreSQL answers a read within ``HEALTH_PROBE_SECONDS``.

    A lost PostgreSQL makes every create a 503 (``Busy``) while nothing else on this node
    notices: the health check asks the database itself, so a load balancer stops sending
    work here. SQLite is a file of this process: ``database_read_only`` covers it.
    """
    st = state(request)
    if not st.settings.database_url:
        return True
    try:
        async with asyncio.timeout(HEALTH_PROBE_SECONDS):
            await st.db.event_horizon()
    except (Busy, TimeoutError):
        return False
    return True


def _warm_worker() -> None:
    """Import the heavy libraries once per pool worker, not in the first task.

    BLAS gets one thread per worker: the pool already uses every core, and OpenBLAS
    threads fighting each other made small matrix products 40x slower on 2 cores.
    """
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401

    import dragon.media.beats  # noqa: F401
    import dragon.media.waveform  # noqa: F401


async def _resources(app: web.Application) -> AsyncIterator[None]:
    st = app[STATE]
    settings: Settings = st.settings
    settings.data_path.mkdir(parents=True, exist_ok=True)
    clean_tmp(settings.tmp_path)
    st.db = open_database(settings)
    st.fetcher = Fetcher(settings)
    await st.fetcher.start()
    set_tool_nice(settings.tool_nice)
    set_tool_memory(settings.tool_memory_bytes)
    # Interactive tasks' jobs have workers of their own: a render's never delays a thumbnail.
    st.pool, st.interactive_pool = (
        WorkerPool(
            slots,
            initializer=_warm_worker,
            nice=settings.tool_nice,
            tool_memory=settings.tool_memory_bytes,
        )
        for slots in (settings.heavy_slots, settings.interactive_slots)
    )
    st.bus = Bus(settings.stream_queue_size)
    st.registry = load_tasks(
        tuple(m.strip() for m in settings.task_modules.split(",") if m.strip())
    )
    backend: Backend
    if settings.s3_bucket:
        backend = S3Backend(settings)
        await backend.start()
        if settings.database_url and not settings.public_url and not backend.direct:
            log.warning(
                "DRAGON_PUBLIC_URL is not set: output URLs name this node (%s) and stop"
                " working when it is gone; give every node the balancer's address",
                settings.base_url,
            )
    else:
        backend = LocalBackend(settings.files_path, settings.base_url)
    st.stores = Stores(st.db, backend, settings, st.fetcher, settings.store_modules)
    # Several nodes: an upload's bytes go to the shared bucket, so any node takes its next
    # PATCH; on one node they stay in the data folder.
    shared = backend if settings.database_url and isinstance(backend, S3Backend) else None
    st.uploads = Uploads(st.db, settings, shared)
    st.scheduler = Scheduler(
        settings=settings,
        database=st.db,
        bus=st.bus,
        registry=st.registry,
        stores=st.stores,
        # A task's ``upload:ID`` is read from storage; every other URL is fetched.
        fetcher=UploadSources(st.uploads, metrics.CountingFetcher(st.fetcher)),
        process_pool=st.pool,
        interactive_pool=st.interactive_pool,
    )
    st.service = Service(
        settings=settings,
        database=st.db,
        bus=st.bus,
        scheduler=st.scheduler,
        registry=st.registry,
        stores=st.stores,
    )
    st.auth = Authenticator(st.db)
    st.buckets = TokenBuckets(settings.create_rate, settings.create_burst)
    st.callbacks = CallbackSender(settings, st.db, st.fetcher)
    st.scheduler.on_callback_queued = st.callbacks.wake
    st.storage = Storage(st.db, st.stores)
    st.sweeper = Sweeper(st.db, st.stores, settings, st.uploads)
    metrics.watch(st.scheduler.queued_in, st.scheduler.busy_in, st.bus.subscribers)
    await st.scheduler.start()
    st.callbacks.start()
    st.sweeper.start()
    try:
        yield
    finally:
        await st.sweeper.stop()
        await st.callbacks.stop()
        st.service.close()
        if not st.scheduler.stopping:
            await st.scheduler.stop(0)
        await st.fetcher.close()
        await st.stores.backend.close()
        st.pool.shutdown()
        st.interactive_pool.shutdown()
        await asyncio.to_thread(st.db.close)


class MalformedRequests(logging.Filter):
    """aiohttp logs each request it cannot parse (``Content-Length: abc``, a broken head) with
    a full traceback: a few bytes from anyone wrote a dozen lines of log. This filter makes
    each one line, and past ``most`` a minute counts them instead, so unauthenticated noise
    cannot flood the log (a line then says how many were left out)."""

    def __init__(self, most: int = 10, window: float = 60.0) -> None:
        super().__init__()
        self.most = most
        self.window = window
        self.started = -window
        self.logged = 0
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        now = time.monotonic()
        dropped = 0
        if now - self.started >= self.window:
            self.started, self.logged, dropped, self.dropped = now, 0, self.dropped, 0
        self.logged += 1
        if self.logged > self.most:
            self.dropped += 1
            return False
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "malformed request from %s refused (%d): %s%s"
        record.args = (
            remote,
            exc.code,
            " ".join(str(exc.message).split())[:200],  # aiohttp's points at the byte below it
            f" ({dropped} more in the last minute not logged)" if dropped else "",
        )
        record.exc_info = record.exc_text = None
        return True


MALFORMED_REQUESTS = MalformedRequests()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    logging.getLogger("aiohttp.server").addFilter(
        MALFORMED_REQUESTS
    )  # added once, however many apps
    app[STATE] = State(settings)
    app[DATABASE_HEALTH] = DatabaseHealth()
    app[events.ACCOUNT_STREAMS] = events.AccountStreams(
        streams_per_account(connection_limit(settings))
    )
    app.cleanup_ctx.append(_resources)
    setup_routes(app)
    return app
