"""The task registry: every module in this package is a task, keyed by ``TASK_NAME``.

A task module declares, and nothing else is needed to add one:

    TASK_NAME = "image.thumb"      # the Dragon task_name
    HEAVY = True                   # waits for a heavy slot (ffmpeg, Pillow); False for probes
    class Schema(TaskSchema): ...  # its parameters (dragon.tasks.schema)
    async def run(ctx: TaskContext) -> dict | str  # from dragon.tasks.context

Modules whose name starts with an underscore, ``schema``, ``reference`` and ``context`` are
helpers, not tasks.
Registration refuses a duplicate name, so two modules cannot silently shadow each other.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from typing import Any

from marshmallow import Schema

NOT_TASKS = {"schema", "reference", "context"}


class TaskAlreadyRegistered(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    heavy: bool
    schema: Schema
    run: Callable[[Any], Awaitable[Any]]
    module: str


def load_tasks(extra: tuple[str, ...] = ()) -> dict[str, TaskSpec]:
    """The built-in tasks, plus ``extra`` modules (plugins, by dotted name)."""
    registry: dict[str, TaskSpec] = {}
    names = [
        f"{__name__}.{info.name}"
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
        if not info.name.startswith("_") and info.name not in NOT_TASKS
    ]
    for name in [*names, *extra]:
        module = importlib.import_module(name)
        spec = TaskSpec(
            name=module.TASK_NAME,
            heavy=getattr(module, "HEAVY", True),
            schema=module.Schema(),
            run=module.run,
            module=module.__name__,
        )
        if spec.name in registry:
            other = registry[spec.name].module
            raise TaskAlreadyRegistered(f"{spec.name} in {spec.module} and {other}")
        registry[spec.name] = spec
    return registry
