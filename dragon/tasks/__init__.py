"""The task registry: every task the server runs, keyed by its ``TASK_NAME``.

A task module declares, and nothing else is needed to add one:

    TASK_NAME = "image.thumb"      # the Dragon task_name
    HEAVY = True                   # needs the CPU (ffmpeg, Pillow); False for probes, uploads
    INTERACTIVE = False            # True: ends in a blink (a thumbnail), runs in the
                                   # interactive lane; otherwise batch (renders, converts)
    class Schema(TaskSchema): ...  # its parameters (dragon.tasks.schema)
    async def run(ctx: TaskContext) -> TaskResult  # from dragon.tasks.context

and, for a task that sends its file to another service rather than to a store:

    SENT_OUTPUTS = ("output",)     # result fields holding the URL of the file it sent

The tasks come from three places, in this order (``dragon.runtime.plugins``): the modules of
this package that declare ``TASK_NAME`` (the others, such as ``schema`` or ``reference``, are
helpers and need no list of exceptions), the modules named in ``DRAGON_TASK_MODULES``, and
the modules that installed distributions declare under the ``dragon.tasks`` entry point
group. A module named outside this package must be a task, or the server refuses to start
and says what it lacks. So does a second module claiming a name already taken: two modules
can never silently shadow each other.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from types import ModuleType

from marshmallow import Schema

from dragon.runtime.plugins import Registry, package_modules, plugin_modules
from dragon.tasks.context import TaskContext, TaskResult

ENTRY_POINT_GROUP = "dragon.tasks"


class NotATask(Exception):
    """A module named as a task lacks what a task declares."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task as the engine runs it: its name, lane, parameters and work."""

    name: str
    heavy: bool
    schema: Schema
    run: Callable[[TaskContext], Awaitable[TaskResult]]
    module: str
    interactive: bool = False  # a heavy task that ends in a blink: the interactive lane
    # Result fields holding the URL of a file the task sent elsewhere (a video platform):
    # outputs, though no store of this server holds them (``/v1/create_file`` redirects
    # to them). Any other URL a result holds without a stored file is data, not an output.
    sent_outputs: frozenset[str] = frozenset()


def problems(module: ModuleType) -> list[str]:
    """What ``module`` gets wrong as a task, all at once (a plugin author fixes them in one go)."""
    name = getattr(module, "TASK_NAME", None)
    schema = getattr(module, "Schema", None)
    checks = {
        "TASK_NAME must be a non-empty string": isinstance(name, str) and bool(name),
        "HEAVY must be True or False": isinstance(getattr(module, "HEAVY", True), bool),
        "INTERACTIVE must be True or False": isinstance(
            getattr(module, "INTERACTIVE", False), bool
        ),
        "Schema must be a marshmallow Schema class": isinstance(schema, type)
        and issubclass(schema, Schema),
        "run must be an async function": inspect.iscoroutinefunction(getattr(module, "run", None)),
        "SENT_OUTPUTS must be a tuple of field names": _names(getattr(module, "SENT_OUTPUTS", ())),
    }
    return [problem for problem, ok in checks.items() if not ok]


def _names(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(name, str) for name in value)


def task_spec(module: ModuleType) -> TaskSpec:
    """The task ``module`` declares, or ``NotATask`` saying what it lacks."""
    wrong = problems(module)
    if wrong:
        raise NotATask(f"{module.__name__} is not a task module: " + "; ".join(wrong))
    return TaskSpec(
        name=module.TASK_NAME,
        heavy=getattr(module, "HEAVY", True),
        interactive=getattr(module, "INTERACTIVE", False),
        schema=module.Schema(),
        run=module.run,
        module=module.__name__,
        sent_outputs=frozenset(getattr(module, "SENT_OUTPUTS", ())),
    )


def builtin_modules() -> Iterator[ModuleType]:
    """The task modules of this package: those that declare ``TASK_NAME``."""
    for module in package_modules(sys.modules[__name__]):
        if hasattr(module, "TASK_NAME"):
            yield module


def _registry(modules: Iterable[ModuleType]) -> dict[str, TaskSpec]:
    registry: Registry[TaskSpec] = Registry("task")
    for module in modules:
        spec = task_spec(module)
        registry.add(spec.name, spec, spec.module)
    return registry.entries


def builtin_tasks() -> dict[str, TaskSpec]:
    """The tasks dragon ships: what ``docs/tasks.md`` and the README list."""
    return _registry(builtin_modules())


def load_tasks(extra: Iterable[str] = ()) -> dict[str, TaskSpec]:
    """Every task a server runs: the built-in ones, the ``extra`` modules (the dotted names of
    ``DRAGON_TASK_MODULES``), then the ``dragon.tasks`` entry points of installed plugins.

    Raises ``NotATask`` for a named module that is not a task and
    ``dragon.runtime.plugins.AlreadyRegistered`` for a name declared twice.
    """
    modules = [*builtin_modules(), *plugin_modules(ENTRY_POINT_GROUP, extra)]
    return _registry(modules)
