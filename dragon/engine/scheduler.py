"""Queueing and running tasks: three lanes, fair across accounts, durable across restarts.

Each task runs in the lane of its class (``dragon.engine.classes``): light (hello, probes),
interactive (thumbnails: never behind a render) or batch (renders, converts: at a lower CPU
priority). Each lane keeps a queue per account and serves accounts round-robin, so one
account's 10,000 queued tasks do not starve another's, and a task lends its slot out while
it downloads (``dragon.engine.lanes``).

The queue is honest: a task of a processing lane is held for this node when it is
dispatched (``start_task(waiting=True)``) but stays ``queued`` in its documents while its
inputs download and while it waits for its slot again; it is ``executing``, started, from
the moment its work begins (``begin``: its first tool, job or output).

The database is the truth: a task is queued here only after its row is committed, every
transition is committed before it is published, and at start-up whatever was left
``queued`` or ``executing`` by an earlier process is queued again (at-least-once). A task
that was started ``max_attempts`` times without ending (it keeps killing the server, say)
ends ``interrupted`` instead of looping forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeGuard, TypeVar

import orjson
from marshmallow import ValidationError

from dragon import errors
from dragon.config import Settings
from dragon.database.interface import Busy, Callback, ClusterDatabase, Database, DiskFull, Row
from dragon.database.rows import FileRow, TaskRow
from dragon.engine import chains, classes, documents, metrics
from dragon.engine.bus import Bus
from dragon.engine.cluster import Cluster
from dragon.engine.diagnostics import diagnose
from dragon.engine.lanes import Lane, Slot
from dragon.engine.queue_position import QueueEstimates
from dragon.engine.runs import Run
from dragon.engine.shared_downloads import SharedFetches
from dragon.net import scrub
from dragon.runtime import disk
from dragon.runtime.pool import WorkerPool
from dragon.runtime.processes import kill_group
from dragon.tasks import TaskSpec
from dragon.tasks.context import Fetcher, Store, TaskContext
from dragon.tasks.schema import ignored_parameters, validation_messages

T = TypeVar("T")

log = logging.getLogger("dragon.engine.scheduler")

PROGRESS_INTERVAL = 0.5
PROGRESS_EVENT_STEP = 10.0
LIMITS_INTERVAL = 2.0  # seconds between reads of the accounts' max_running
CANCELLED_MESSAGE = "the task was cancelled at its owner's request"


class TaskStores(Protocol):
    """Where a task's outputs go: the store its ``task_store`` parameter chooses."""

    def for_task(self, task_store: dict[str, Any] | None) -> Store: ...
    async def remove(self, rows: Sequence[FileRow]) -> int: ...
    async def read_into(self, file: FileRow, dest: Path) -> None: ...


class Load(Protocol):
    """What the health check and the metrics read of the scheduler."""

    def queued_count(self) -> int: ...
    def executing_count(self) -> int: ...
    def queued_in(self, lane: str) -> int: ...
    def busy_in(self, lane: str) -> int: ...


def _clustered(database: Database) -> TypeGuard[ClusterDatabase]:
    """Is this one node of several sharing the database (PostgreSQL's backend says so)?"""
    return bool(getattr(database, "clustered", False))


class Scheduler:
    """Queues and runs this node's tasks; one ``Run`` record per task it holds."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        bus: Bus,
        registry: dict[str, TaskSpec],
        stores: TaskStores,
        fetcher: Fetcher,
        process_pool: WorkerPool | None = None,
        interactive_pool: WorkerPool | None = None,
    ) -> None:
        self.settings = settings
        self.db = database
        self.bus = bus
        self.registry = registry
        self.stores = stores
        self.process_pool = process_pool
        self.interactive_pool = interactive_pool or process_pool
        # The owner recorded on the tasks this process starts: node name and boot.
        self.boot_id = f"{settings.node}/{secrets.token_hex(8)}"
        # Processing lanes share each account's max_running; interactive is served first.
        self.limits: dict[int, int] = {}  # max_running by account (absent: no limit)
        self.lanes = {
            # Light work is mostly I/O: its downloads are its work, not a queue to bound.
            classes.LIGHT: Lane(classes.LIGHT, settings.light_concurrency, prefetch=False),
            classes.INTERACTIVE: self._processing(classes.INTERACTIVE, settings.interactive_slots),
            classes.BATCH: self._processing(classes.BATCH, settings.heavy_slots),
        }
        # Dispatched tasks whose work has not begun, per lane: they count as queued.
        self._unbegun: Counter[str] = Counter()
        self._account_downloads: dict[int, asyncio.Semaphore] = {}
        self._runs: dict[str, Run] = {}  # queued here or running here, by key
        # Runs with a progress not yet written, in the order they first reported one.
        self._reported: list[Run] = []
        self.estimates = QueueEstimates(self, database)
        self._progress_flusher: asyncio.Task[None] | None = None
        self._limits_reader: asyncio.Task[None] | None = None
        self.stopping = False
        self.cluster: Cluster | None = None  # with PostgreSQL: this node among others
        # Called when a task's end queued a callback; the app points it at the sender.
        self.on_callback_queued: Callable[[], None] = lambda: None
        self._started = False
        self.shared = SharedFetches(fetcher, settings.tmp_path / "batches")

    @property
    def runs(self) -> Mapping[str, Run]:
        """The tasks queued or running on this node, by key (read-only for the others)."""
        return self._runs

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if _clustered(self.db):
            self.cluster = Cluster(self, self.db)
            await self.cluster.start()
        await self.recover()
        await self._read_limits()
        self._started = True
        self._dispatch()
        self._progress_flusher = asyncio.create_task(self._flush_progress_forever())
        self._limits_reader = asyncio.create_task(self._read_limits_forever())

    async def recover(self, rows: Sequence[Row] | None = None) -> None:
        """Queue again what an earlier process (or a silent node: ``rows``) left unfinished."""
        found: Sequence[Row] = await self.db.unfinished_tasks() if rows is None else rows
        requeued = interrupted = 0
        for row in found:
            if row["status"] == "executing":
                if row["attempts"] >= self.settings.max_attempts:
                    await self._finish(
                        row["key"],
                        row["params"],
                        "error",
                        None,
                        f"the task was interrupted {row['attempts']} times"
                        " (the server stopped while it ran); giving up",
                        errors.INTERRUPTED,
                    )
                    interrupted += 1
                    continue
                await self.db.requeue_task(row["key"], documents.document)
            elif row["waiting_for"] is not None:  # a chain's task: its inputs' ends queue it
                continue
            self.enqueue(row["account_id"], row["key"], row["task_name"], row["lane"])
            requeued += 1
        if rows:
            log.info("recovered %d unfinished tasks (%d given up)", requeued, interrupted)

    async def stop(self, grace: float) -> None:
        """Stop taking tasks; give running ones ``grace`` seconds, then cancel them.

        Cancelled tasks go back to ``queued`` so the next start runs them again. Blocked
        requests and streams are released last (the bus closes): until then they get the
        ends of the tasks that finish within the grace, as they would have without it.
        """
        self.stopping = True
        try:
            await self._drain(grace)
        finally:
            self.bus.close()
        if self.cluster is not None:  # after the requeues above: other nodes take them
            cluster, self.cluster = self.cluster, None
            await cluster.stop()

    async def _drain(self, grace: float) -> None:
        """Let the running tasks end within ``grace``, cancel the rest, write progress."""
        running = [run.task for run in self._runs.values() if run.task is not None]
        if running:
            log.info("waiting up to %.0f s for %d running tasks", grace, len(running))
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        if self._limits_reader:
            self._limits_reader.cancel()
        if self._progress_flusher:
            self._progress_flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._progress_flusher
            await self._flush_progress()

    # -- queueing -------------------------------------------------------------------------
    def queued_count(self) -> int:
        """Tasks here whose work has not begun: in a lane's queue, or dispatched and
        downloading their inputs or waiting for their slot again."""
        return sum(lane.queue.size for lane in self.lanes.values()) + self._unbegun.total()

    def executing_count(self) -> int:
        return sum(
            1 for run in self._runs.values() if run.begun and not run.ended and not run.cancelled
        )

    def queued_in(self, lane: str) -> int:
        return self.lanes[lane].queue.size + self._unbegun[lane]

    def busy_in(self, lane: str) -> int:
        return self.lanes[lane].busy

    def slots_in(self, lane: str) -> int:
        return self.lanes[lane].capacity

    def lane_for(self, task_name: str, params: Mapping[str, object]) -> str:
        """The lane a new task of ``task_name`` with ``params`` runs in (its class)."""
        return classes.lane_for(self.registry.get(task_name), params)

    def _processing(self, name: str, slots: int) -> Lane:
        return Lane(
            name,
            slots,
            running=self._processing_slots,
            limit=self._limit_of,
            spare_only=self._has_peers,
        )

    def _has_peers(self) -> bool:
        """Other nodes are alive: leave them the work this node has no free slot for."""
        return self.cluster is not None and self.cluster.peers > 0

    def _processing_slots(self, account_id: int) -> int:
        return sum(self.lanes[name].held[account_id] for name in classes.PROCESSING)

    def _limit_of(self, account_id: int) -> int:
        return self.limits.get(account_id, 0)

    def live_document(self, key: str) -> dict[str, Any] | None:
        """The latest status document of a task dispatched here (its progress is newer
        than its row's, which is written about twice a second); ``stage`` says whether a
        task that is still queued downloads its inputs meanwhile."""
        run = self._runs.get(key)
        if run is None or run.document is None:
            return None
        if run.downloading:
            return {**run.document, "stage": "downloading"}
        return run.document

    def share_downloads(self, batch: str, keys: list[str]) -> None:
        """``keys`` were created together: the first download of a URL serves them all."""
        self.shared.register(batch, keys)

    def enqueue(self, account_id: int, key: str, task_name: str, lane: str | None) -> None:
        """Queue a task in ``lane`` (None, for tasks created before lanes: its name's)."""
        name = lane if lane in self.lanes else self.lane_for(task_name, {})
        self._queue(account_id, key, task_name, self.lanes[name])

    def _queue(self, account_id: int, key: str, task_name: str, lane: Lane) -> None:
        run = self._runs.get(key)
        if run is None:
            self._runs[key] = Run(key, task_name, lane)
        elif run.queued:
            run.task_name = task_name
        # A key running here and queued again (a claim, a resync) keeps its record: the
        # lane skips it when it comes up, and the run serves it again if it loses its start.
        lane.queue.put(account_id, key)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand every free slot to the next task (called whenever a slot or task changes)."""
        if not self._started or self.stopping:
            return
        for lane in self.lanes.values():
            while (picked := lane.take()) is not None:
                self._launch(lane, *picked, held=True)
            while (picked := lane.prefetch_next()) is not None:
                self._launch(lane, *picked, held=False)

    def _launch(self, lane: Lane, account_id: int, key: str, *, held: bool) -> None:
        """Run a task the lane picked: holding a slot (light lane), or sent to download
        first and asking for one when its work begins (processing lanes)."""
        run = self._runs.get(key)
        if run is not None and not run.queued:  # queued twice: running here
            if held:
                lane.release(account_id)
            elif run.slot is None or run.slot.held:  # not lent out: the pick added the key
                lane.unlend(account_id, key)
            run.again = account_id
            return
        if run is None:  # queued twice, and its first run has ended
            run = self._runs[key] = Run(key, "", lane)
        run.lane = lane
        run.slot = Slot(
            lane, account_id, key, self._downloads_of(account_id), self._dispatch, held=held
        )
        run.started = time.time()
        self._unbegun[lane.name] += 1
        run.task = asyncio.create_task(self._run(run))

    def _downloads_of(self, account_id: int) -> asyncio.Semaphore:
        semaphore = self._account_downloads.get(account_id)
        if semaphore is None:
            semaphore = asyncio.Semaphore(self.settings.max_account_downloads)
            self._account_downloads[account_id] = semaphore
        return semaphore

    async def _run(self, run: Run) -> None:
        key = run.key
        try:
            await self._execute(run)
        except asyncio.CancelledError:
            if run.cancelled:  # its end is the cancel's, written already: nothing to requeue
                return
            if not self.stopping:
                raise
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._persist(partial(self.db.requeue_task, key, documents.document))
                )
        except Exception:
            log.exception("task %s: unexpected failure in the scheduler", key)
        finally:
            if self._runs.get(key) is run:
                del self._runs[key]
            if not run.begun:
                self._unbegun[run.lane.name] -= 1
            run.document = None
            if run.slot is not None:
                run.slot.give_back()
            if run.again is not None and not run.won:
                self._serve_again(run, run.again)
            if run.cancelled:  # after its clean-up (tools killed, tmp removed): its outputs
                await asyncio.shield(self._discard_outputs(key))

    def _serve_again(self, run: Run, account_id: int) -> None:
        """Queue again a key that was queued twice and whose first run lost the start.

        The start can lose because a claim of this very node held the row at that instant
        (``start_task`` skips locked rows and reads it still queued); the claim then
        commits, makes the task this node's, and queues it here while the losing run still
        holds the key, so the lane skipped that second queueing. Dropping it left the task
        executing in this node's name with no lane holding it (found only by the
        heartbeat's adoption, seconds later). ``start_task`` decides again: the task runs
        if it is ours, and is left alone if it has ended or another node has it.
        """
        self._queue(account_id, run.key, run.task_name, run.lane)

    # -- running one task ---------------------------------------------------------------
    async def _persist(self, write: Callable[[], Awaitable[T]]) -> T:
        """A scheduler write that must not be lost: retried on Busy and on DiskFull.

        A task's start or end is never dropped or rewritten because another process held
        the database for a while (docs/guarantees.md) or its disk was full: it is written once
        space is back, and only then published (blocked requests and streams see the end
        then). Requests are refused meanwhile.
        """
        delay = 0.1
        while True:
            try:
                return await write()
            except (Busy, DiskFull) as exc:
                why = "busy" if isinstance(exc, Busy) else "on a full disk"
                log.warning("database %s; retrying a task update in %.1f s", why, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @contextlib.contextmanager
    def _out_of_space(self) -> Iterator[None]:
        """A task's write that found the disk full (ENOSPC, or the database's disk) ends it
        ``disk_full``, not ``internal_error``."""
        try:
            yield
        except (OSError, DiskFull) as exc:
            if isinstance(exc, DiskFull) or errors.out_of_space(exc):
                raise disk.full_error(self.settings) from exc
            raise

    async def _execute(self, run: Run) -> None:
        """Start the task (if this node wins it), run it, and record how it ended."""
        row = await self._start(run)
        if row is None:
            return
        params = documents.from_json(row["params"])
        try:
            result = await self._outcome(run, row, params)
            await self.begin(run.key)  # a task that ran no tool began its work all the same
            await self._finish(run.key, params, "success", result, None, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error, code, stage = self._failure(exc, run.key, row["task_name"])
            error = scrub.task_error(error, params)  # no secret of the task, no credential
            diagnostics = await self._diagnose(exc, run.context, run.key, stage)
            await self._finish(run.key, params, "error", None, error, code, diagnostics)
        finally:
            await self._clean_up(run)

    async def _start(self, run: Run) -> Row | None:
        """Hold the task for this node and publish it: ``executing`` in the light lane,
        ``waiting`` (documents: queued) in a processing lane until its work begins. None if
        another runner has it or it is no longer queued."""
        start = partial(
            self.db.start_task,
            run.key,
            self.boot_id,
            time.time(),
            documents.document,
            waiting=run.lane.name != classes.LIGHT,
        )
        row = await self._persist(start)
        if row is None or row["status"] != "executing" or row["owner"] != self.boot_id:
            return None
        run.won = True
        if row["stage"] is None:
            self._begun(run)
        run.document = documents.document(row)
        self.bus.publish(run.key, run.document)
        return row

    def _begun(self, run: Run) -> None:
        run.begun = True
        self._unbegun[run.lane.name] -= 1

    async def begin(self, key: str) -> None:
        """The work of a task dispatched here begins: executing from now (``Reporter``)."""
        run = self._runs.get(key)
        if run is None or run.begun or run.task is None:
            return
        if run.slot is not None:
            await run.slot.take()  # queued until the lane grants it a slot
        now = time.time()
        write = partial(self.db.begin_work, key, self.boot_id, now, documents.document)
        row = await self._persist(write)
        # Only now: until the row says executing, the task is queued (and has a position).
        self._begun(run)
        run.started = now
        if row is not None:
            run.document = documents.document(row)
            self.bus.publish(key, run.document)

    async def _outcome(self, run: Run, row: Row, params: object) -> object:
        """Load the parameters, run the task's code under its timeout, and return its
        result with its outputs and warnings."""
        if not isinstance(params, dict):  # a create stores JSON objects only
            raise TypeError(f"the parameters of task {run.key} are not a JSON object")
        spec = self.registry.get(row["task_name"])
        if spec is None:
            raise errors.ParameterError.one("task_name", f"unknown task {row['task_name']!r}")
        params, stored = await chains.resolve(self.db, row["account_id"], params)
        try:
            loaded = spec.schema.load({k: v for k, v in params.items() if k != "task_name"})
        except ValidationError as exc:
            raise errors.ParameterError(validation_messages(exc)) from None
        ctx = run.context = TaskContext(
            key=run.key,
            task_name=spec.name,
            account_id=row["account_id"],
            params=loaded,
            tmpdir=self.settings.tmp_path / run.key,
            settings=self.settings,
            reporter=self,
            fetcher=self._fetcher_for(run.key, stored),
            store=self.stores.for_task(loaded.get("task_store")),
            process_pool=(
                self.interactive_pool if run.lane.name == classes.INTERACTIVE else self.process_pool
            ),
            slot=run.slot,
            deadline=time.monotonic() + self.settings.task_timeout_seconds,
            nice=self.settings.batch_nice if run.lane.name == classes.BATCH else None,
        )
        ctx.warnings.extend(ignored_parameters(spec.schema, params))
        async with asyncio.timeout(self.settings.task_timeout_seconds):
            with self._out_of_space():
                result = await spec.run(ctx)
        if isinstance(result, dict):
            result = {**result, **ctx.outputs}
            if ctx.warnings:
                result["warnings"] = ctx.warnings
        return result

    def _fetcher_for(self, key: str, stored: Mapping[str, FileRow]) -> Fetcher:
        """The task's fetcher: shared with the tasks created with it, reading the outputs
        of its input tasks (chains) from storage."""
        fetcher = self.shared.fetcher_for(key)
        return chains.StoredInputs(fetcher, stored, self.stores.read_into) if stored else fetcher

    def _failure(self, exc: Exception, key: str, task_name: str) -> tuple[object, str, str | None]:
        """``(error, error_code, stage)`` of a task that raised ``exc``: what its status
        document says, and the stage its diagnostics name when the error does not."""
        if isinstance(exc, errors.ParameterError):
            return {"parameters": exc.fields}, errors.PARAMETERS, "validate"
        if isinstance(exc, errors.TaskError):
            return exc.message, exc.code, None
        if isinstance(exc, TimeoutError):
            timeout = self.settings.task_timeout_seconds
            return f"the task took longer than {timeout:g} s", errors.TIMEOUT, None
        log.error("task %s (%s) failed", key, task_name, exc_info=exc)
        return (
            f"internal error while running {task_name}; the server"
            f" log has the details (task {key})",
            errors.INTERNAL_ERROR,
            None,
        )

    async def _clean_up(self, run: Run) -> None:
        """Close the task's context, kill what it left running, drop its files."""
        ctx, run.context = run.context, None
        if ctx is not None:
            await ctx.aclose()
            for proc in ctx.processes:
                kill_group(proc)
        await self.shared.task_ended(run.key)
        if ctx is not None and ctx.tmpdir_made:
            await asyncio.to_thread(shutil.rmtree, self.settings.tmp_path / run.key, True)

    async def _diagnose(
        self, exc: BaseException, ctx: TaskContext | None, key: str, stage: str | None = None
    ) -> dict[str, Any]:
        return await diagnose(exc, ctx, self.settings.tmp_path / key, self.settings.tmp_path, stage)

    async def _finish(
        self,
        key: str,
        params: object,
        state: str,
        result: object,
        error: object,
        error_code: str | None,
        diagnostics: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(params, str):
            params = documents.from_json(params)
        field = "url_callback" if state == "success" else "url_errback"
        callback = params.get(field) if isinstance(params, dict) else None
        if not isinstance(callback, str):
            callback = None
        run = self._runs.get(key)
        if run is not None:
            run.pending_progress = None
        now = time.time()
        hook = Callback(callback, _callback_body, now) if callback else None
        dependents: list[TaskRow] = []
        row = await self._persist(
            partial(
                self.db.finish_task,
                key,
                state,
                result,
                error,
                error_code,
                now,
                hook,
                render=documents.document,
                diagnostics=diagnostics,
                dependents=dependents,
            )
        )
        if run is not None:
            run.ended = True
        if row is not None:
            self.bus.publish(key, documents.document(row))
            self._released(dependents)
            metrics.task_ended(
                row["task_name"], self.registry, state, row["started_at"], row["completed_at"]
            )
            started, completed = row["started_at"], row["completed_at"]
            if state == "success" and started is not None and completed is not None:
                self.estimates.record(row["task_name"], completed - started)
        elif run is not None:  # not written: the task was cancelled as its run ended
            run.cancelled = True
        if callback:
            self.on_callback_queued()

    def _released(self, dependents: Sequence[TaskRow]) -> None:
        """Tasks of chains that waited for a task that just ended: publish their new
        documents, and queue those that wait for nothing more (any node may claim them)."""
        for row in dependents:
            self.bus.publish(row["key"], documents.document(row))
            if row["waiting_for"] is None:
                self.enqueue(row["account_id"], row["key"], row["task_name"], row["lane"])

    # -- Reporter (what TaskContext calls) ------------------------------------------------
    def progress(self, key: str, value: float) -> None:
        value = round(max(0.0, min(100.0, float(value))), 1)
        run = self._runs.get(key)
        doc = None if run is None else run.document
        if run is None or doc is None or not run.begun or doc.get("progress") == value:
            return
        if run.pending_progress is None:
            self._reported.append(run)
        run.pending_progress = value

    async def partial(self, key: str, result: dict[str, Any]) -> None:
        run = self._runs.get(key)
        doc = None if run is None else run.document
        doc = {**doc, "result": result} if doc is not None else None
        await self.db.set_partial(key, result, doc)
        if run is not None and doc is not None:
            run.document = doc
            self.bus.publish(key, doc)

    async def _flush_progress(self) -> None:
        reported, self._reported = self._reported, []
        updates: dict[Run, float] = {}
        for run in reported:
            if run.pending_progress is not None:
                updates[run] = run.pending_progress
                run.pending_progress = None
        if not updates:
            return
        # The event feed records a progress change each time a task passes a multiple of
        # PROGRESS_EVENT_STEP (at most 9 per run), not every tick: streams get every tick.
        recorded = {}
        for run, value in updates.items():
            doc = run.document
            before = (doc or {}).get("progress") or 0
            if doc is not None and value // PROGRESS_EVENT_STEP > before // PROGRESS_EVENT_STEP:
                recorded[run.key] = {**doc, "progress": value}
        await self.db.set_progress({run.key: value for run, value in updates.items()}, recorded)
        for run, value in updates.items():
            doc = run.document
            if doc is not None:
                doc = {**doc, "progress": value}
                run.document = doc
                self.bus.publish(run.key, doc)

    async def _read_limits(self) -> None:
        """Read the accounts' ``max_running`` (changed by ``dragon accounts update``)."""
        limits = await self.db.account_limits()
        if limits != self.limits:
            self.limits = limits
            self._dispatch()  # a lifted limit frees waiting tasks

    async def _read_limits_forever(self) -> None:
        while True:
            await asyncio.sleep(LIMITS_INTERVAL)
            try:
                await self._read_limits()
            except Exception as exc:  # the database is away: keep the last limits
                log.warning("could not read the accounts' limits: %s", exc)

    async def _flush_progress_forever(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            try:
                await self._flush_progress()
            except Exception:
                log.exception("could not write progress")

    # -- cancel ---------------------------------------------------------------------------
    async def cancel(self, account_id: int, keys: list[str]) -> int:
        """End the account's queued and executing tasks among ``keys`` as ``cancelled`` and
        stop those running here; returns how many it ended.

        The end is one database write, made as every end is (errback, feed event, notice
        to the other nodes), so it holds whichever node runs the task: that node hears of
        it (this one at once, the others through ``Cluster``) and stops the run without
        writing an end of its own. A queued task simply never starts (``start_task`` finds
        it ended). Ended tasks, other accounts' and unknown keys are left as they are.
        """
        now = time.time()
        dependents: list[TaskRow] = []
        rows = await self.db.cancel_tasks(
            keys,
            account_id,
            now,
            CANCELLED_MESSAGE,
            partial(_errback, now),
            documents.document,
            dependents,
        )
        for row in rows:
            self.stop_cancelled(row["key"])
            self.bus.publish(row["key"], documents.document(row))
            # Counted as an end, without a run time: a stopped run measures nothing.
            metrics.task_ended(row["task_name"], self.registry, "error", None, None)
        self._released(dependents)
        if rows:
            self.on_callback_queued()
        return len(rows)

    def stop_cancelled(self, key: str) -> None:
        """``key`` was cancelled (here or on another node): stop its run if it runs here.

        The run's progress and partial results are no longer published; its tools are
        killed and its temporary files removed as it unwinds (``_execute``), then the
        outputs it stored (``_run``).
        """
        run = self._runs.get(key)
        if run is not None and run.task is None and run.lane.queue.discard(key):
            del self._runs[key]  # queued here: it leaves the queue (and its counts) now
            return
        if run is None or run.task is None or run.cancelled:
            return
        run.cancelled = True
        run.document = None
        run.pending_progress = None
        run.task.cancel()

    async def _discard_outputs(self, key: str) -> None:
        """Remove every file a cancelled task stored: its records, then its bytes."""
        try:
            await self.stores.remove(await self.db.task_files(key))
        except Exception:
            log.exception("task %s was cancelled; could not remove its outputs", key)


def clean_tmp(tmp: Path) -> None:
    """Remove temp folders left by an earlier process (called at start-up)."""
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)


def _errback(now: float, row: TaskRow) -> Callback | None:
    """The errback a cancelled task asked for (``url_errback``), due at ``now``."""
    params = documents.from_json(row["params"])
    url = params.get("url_errback") if isinstance(params, dict) else None
    return Callback(url, _callback_body, now) if isinstance(url, str) and url else None


def _callback_body(row: Row) -> bytes:
    """A callback's body: the task's final status document."""
    return orjson.dumps(documents.document(row))
