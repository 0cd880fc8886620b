"""A reference of every task, generated from the task modules themselves.

``docs/tasks.md`` is this module's output (``python -m dragon.tasks.reference > docs/tasks.md``)
and ``tests/unit/test_docs.py`` fails when it is stale, so the docs follow the schemas. The same
field descriptions are what an OpenAPI document would be built from.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from marshmallow import fields, validate

from dragon.tasks import builtin_tasks
from dragon.tasks.schema import TaskSchema

COMMON = set(TaskSchema._declared_fields)

HEADER = """# Tasks

Every task of the Dragon API that this server runs, generated from the task modules by
`python -m dragon.tasks.reference` (do not edit by hand). The Dragon API's original
documentation describes the output values; notes below say where
dragon adds to it or had to decide something it left open.

Every task also accepts `url_callback`, `url_errback`, `task_store`, `task_metas` and
`batch` (see [api.md](api.md)). Output files appear in the result as URLs under their names.
Each task runs in a lane, its class of work: `light` (probes, uploads), `interactive` (ends
in a blink; never waits behind batch work) or `batch` (renders, converts; `"batch": true`
sends an interactive task there too). See [operations.md](operations.md).
"""


# Marshmallow field classes as a reader knows them; any other is shown by its class name.
KINDS = {
    "String": "string",
    "Url": "URL",
    "Integer": "integer",
    "Float": "number",
    "Boolean": "boolean",
    "List": "list",
    "Color": "colour #RRGGBB",
    "Dict": "object",
    "Raw": "any",
    "Crop": 'boolean or `"smart"`',
}


def kind(field: fields.Field[Any]) -> str:
    """The type column: ``list of URL`` for a list of URLs."""
    if isinstance(field, fields.List):
        return f"list of {kind(field.inner)}"
    if isinstance(field, fields.Nested):
        schema = field.schema
        inner = ", ".join(f"`{n}`" for n in schema.fields)
        return f"object ({inner})"
    name = type(field).__name__
    return KINDS.get(name, name.lower())


def bounds(field: fields.Field[Any], validator: object) -> str | None:
    """What one validator allows, in words (None for a validator a reader need not see)."""
    if isinstance(validator, validate.OneOf):
        return "one of " + ", ".join(f"`{c}`" for c in validator.choices)
    if isinstance(validator, validate.Range):
        low, high = validator.min, validator.max
        if low is not None and high is not None:
            return f"{low} to {high}"
        if low is not None:
            return f"at least {low}"
        return None if high is None else f"at most {high}"
    if isinstance(validator, validate.Length) and validator.max is not None:
        unit = "characters" if isinstance(field, fields.String) else "items"
        return f"{validator.min or 0} to {validator.max} {unit}"
    return None


def default(field: fields.Field[Any]) -> str | None:
    """``**required**`` or the default a client gets by leaving the field out."""
    if field.required:
        return "**required**"
    value = field.load_default
    if value is None or callable(value):
        return None
    if isinstance(value, tuple) and len(value) == 3:
        value = "#{:02X}{:02X}{:02X}".format(*value)
    return f"default `{value}`"


def describe(field: fields.Field[Any]) -> tuple[str, str]:
    """(type, what it is, constraints and default) of a marshmallow field, for a table row."""
    what = field.metadata.get("description")
    notes = [what, default(field), *(bounds(field, v) for v in field.validators)]
    return kind(field), "; ".join(note for note in notes if note)


def render() -> str:
    """``docs/tasks.md``: the built-in tasks by name (plugins document themselves)."""
    out = [HEADER]
    for name, spec in sorted(builtin_tasks().items()):
        module = importlib.import_module(spec.module)
        doc = inspect.getdoc(module) or ""
        out.append(f"## `{name}`\n")
        out.append(doc + "\n")
        rows = [
            (fname, *describe(field))
            for fname, field in spec.schema.fields.items()
            if fname not in COMMON
        ]
        if rows:
            out.append("| parameter | type | notes |\n|---|---|---|")
            out.extend(f"| `{n}` | {t} | {notes} |" for n, t, notes in rows)
            out.append("")
        notes = getattr(module, "reference_notes", None)
        if callable(notes):  # what a table row cannot hold (video.create's profiles)
            out.append(notes())
        lane = "interactive" if spec.interactive else "batch"
        out.append(f"Runs in the {lane if spec.heavy else 'light'} lane.\n")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
