"""The statements an operation asks its backend to run, and the two ways of running them.

An operation of the database (``dragon.database.operations``) is a generator that yields
``Query``, ``QueryMany`` and ``Notify`` steps and receives each one's result: it holds the
rules (which statements, in what order, on which branch) and no SQL, no placeholders and
no I/O. A backend turns a step into its own dialect: it looks the query's SQL up by name,
binds the named parameters its way and runs it the way it runs everything (SQLite: in a
thread, synchronously, ``run_sync``; PostgreSQL: awaited on an asyncpg connection,
``run_async``).

Parameters are named (``:key`` in both dialects' SQL). A list parameter stands for a set
of values (PostgreSQL binds an array for ``= ANY(:keys)``; SQLite reads it as JSON text
through ``json_each``). A backend may add parameters of its own that the rules do not know
(PostgreSQL's lease), and SQL may leave out parameters it does not need.

The helpers (``rows``, ``row``, ``value``, ``count``, ``many``, ``notify``) are what the
rules call with ``yield from``: each yields one step and returns its result, typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Literal, NamedTuple, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R", bound=Mapping[str, object])

Params = Mapping[str, object]
Record = dict[str, object]  # a result row as a backend hands it back: column -> value
# What a query's result is: all rows, the first row (or None), the first column of the
# first row (or None), or the number of rows it changed.
Fetch = Literal["rows", "row", "value", "count"]


class Query(NamedTuple):
    """Run the named query once with ``params``; the result is shaped by ``fetch``.

    The steps are named tuples rather than frozen dataclasses: an operation makes one per
    statement, on the event loop's thread for point reads, and a frozen dataclass costs
    about a microsecond to build."""

    name: str
    params: Params
    fetch: Fetch


class QueryMany(NamedTuple):
    """Run the named query once per parameter set (one round trip where the driver can)."""

    name: str
    params: Sequence[Params]


class Notify(NamedTuple):
    """Tell the other nodes sharing the database, on commit, that ``keys`` changed:
    ``n`` new queued tasks, ``c`` changed tasks, ``j`` a node joined (its owner). A
    database no other node reads (SQLite) has nobody to tell and skips it."""

    kind: Literal["n", "c", "j"]
    keys: Sequence[str]


Step = Query | QueryMany | Notify
Op = Generator[Step, object, T]


class Conflict(Exception):
    """A unique constraint refused the statement. Backends throw it into the operation at
    the step that failed, whatever their driver calls it, so a rule can catch it."""


def rows(shape: type[R], query: str, /, **params: object) -> Generator[Step, object, list[R]]:
    return cast("list[R]", (yield Query(query, params, "rows")))


def row(shape: type[R], query: str, /, **params: object) -> Generator[Step, object, R | None]:
    return cast("R | None", (yield Query(query, params, "row")))


def value(kind: type[T], query: str, /, **params: object) -> Generator[Step, object, T | None]:
    return cast("T | None", (yield Query(query, params, "value")))


def count(query: str, /, **params: object) -> Generator[Step, object, int]:
    return cast(int, (yield Query(query, params, "count")))


def many(name: str, params: Sequence[Params]) -> Generator[Step, object, None]:
    if params:
        yield QueryMany(name, params)


def notify(kind: Literal["n", "c", "j"], keys: Sequence[str]) -> Generator[Step, object, None]:
    if keys:
        yield Notify(kind, keys)


async def run_async(op: Op[T], execute: Callable[[Step], Awaitable[object]]) -> T:
    """Step ``op`` to its end, awaiting each statement with ``execute``; a ``Conflict`` it
    raises is thrown into ``op`` at the step that failed."""
    result: object = None
    failure: Conflict | None = None
    while True:
        try:
            step = op.send(result) if failure is None else op.throw(failure)
        except StopIteration as done:
            return cast(T, done.value)
        try:
            result, failure = await execute(step), None
        except Conflict as exc:
            result, failure = None, exc


def run_sync(op: Op[T], execute: Callable[[Step], object]) -> T:
    """``run_async``'s loop on this thread, for a driver whose statements block (SQLite).

    The same two rules (send each result back, throw a ``Conflict`` in at its step), written
    out without a coroutine: a point read runs on the event loop's thread thousands of
    times a second, and wrapping it in a coroutine that never suspends cost a third of its
    time."""
    result: object = None
    failure: Conflict | None = None
    while True:
        try:
            step = op.send(result) if failure is None else op.throw(failure)
        except StopIteration as done:
            return cast(T, done.value)
        try:
            result, failure = execute(step), None
        except Conflict as exc:
            result, failure = None, exc
