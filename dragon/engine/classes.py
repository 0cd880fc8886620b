"""Classes of work: which lane a task runs in, decided once, at its create.

- ``light``: tasks that barely use the CPU (``hello``, probes, uploads to platforms). Many
  run at once (``DRAGON_LIGHT_CONCURRENCY``).
- ``interactive``: CPU work that ends in a blink (an image thumbnail, a film strip, a
  waveform): one slot per core by default (``DRAGON_INTERACTIVE_CONCURRENCY``). Its tools run
  at the tools' usual priority.
- ``batch``: CPU work that may take minutes (a render, a convert, a reverse), and plugins
  that do not say otherwise: one slot per core (``DRAGON_CONCURRENCY``), its tools at a lower
  CPU priority (``DRAGON_BATCH_NICE``), so interactive work gets the cores first and batch
  work fills them the rest of the time.

A task module says ``INTERACTIVE = True`` to be interactive; any task may ask for batch
with the ``batch`` parameter (``"batch": true``). Nothing asks to jump the other way: a
task's class is never higher than its module's.
"""

from __future__ import annotations

from collections.abc import Mapping

from marshmallow import fields

from dragon.tasks import TaskSpec

LIGHT = "light"
INTERACTIVE = "interactive"
BATCH = "batch"
LANES = (LIGHT, INTERACTIVE, BATCH)
PROCESSING = (INTERACTIVE, BATCH)  # the lanes whose slots are CPU work


def wants_batch(params: Mapping[str, object]) -> bool:
    """The task's ``batch`` parameter, read with its schema's own truthy values."""
    value = params.get("batch", False)
    return isinstance(value, str | int | bool) and value in fields.Boolean.truthy


def lane_for(spec: TaskSpec | None, params: Mapping[str, object]) -> str:
    """The lane of a task of ``spec`` (None: a name no module serves; it ends at once)."""
    if spec is None or not spec.heavy:
        return LIGHT
    if spec.interactive and not wants_batch(params):
        return INTERACTIVE
    return BATCH
