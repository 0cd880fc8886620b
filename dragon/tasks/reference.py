"""A reference of every task, generated from the task modules themselves.

``docs/tasks.md`` is this module's output (``python -m dragon.tasks.reference > docs/tasks.md``)
and ``tests/unit/test_docs.py`` fails when it is stale, so the docs follow the schemas. The same
field descriptions are what an OpenAPI document would be built from.
"""

from __future__ import annotations

import importlib
import inspect

from marshmallow import fields, validate

from dragon.tasks import load_tasks
from dragon.tasks.schema import TaskSchema

COMMON = set(TaskSchema._declared_fields)

HEADER = """# Tasks

Every task of the Dragon API that this server runs, generated from the task modules by
`python -m dragon.tasks.reference` (do not edit by hand). The Dragon API's original
documentation describes the output values; notes below say where
dragon adds to it or had to decide something it left open.

Every task also accepts `url_callback`, `url_errback`, `task_store` and `task_metas`
(see [api.md](api.md)). Output files appear in the result as URLs under their names.
"""


def describe(field: fields.Field) -> tuple[str, str]:
    """(type, constraints and default) of a marshmallow field, for a table row."""
    kind = type(field).__name__
    names = {
        "String": "string",
        "Url": "URL",
        "Integer": "integer",
        "Float": "number",
        "Boolean": "boolean",
        "List": "list",
        "Color": "colour #RRGGBB",
        "Dict": "object",
        "Raw": "any",
    }
    kind = names.get(kind, kind.lower())
    if isinstance(field, fields.List):
        kind = f"list of {describe(field.inner)[0]}"
    notes = []
    for v in field.validators:
        if isinstance(v, validate.OneOf):
            notes.append("one of " + ", ".join(f"`{c}`" for c in v.choices))
        elif isinstance(v, validate.Range):
            if v.min is not None and v.max is not None:
                notes.append(f"{v.min} to {v.max}")
            elif v.min is not None:
                notes.append(f"at least {v.min}")
            elif v.max is not None:
                notes.append(f"at most {v.max}")
        elif isinstance(v, validate.Length) and v.max is not None:
            unit = "characters" if isinstance(field, fields.String) else "items"
            notes.append(f"{v.min or 0} to {v.max} {unit}")
    if field.required:
        notes.insert(0, "**required**")
    elif field.load_default is not None and not callable(field.load_default):
        default = field.load_default
        if isinstance(default, tuple) and len(default) == 3:
            default = "#{:02X}{:02X}{:02X}".format(*default)
        notes.insert(0, f"default `{default}`")
    return kind, "; ".join(notes)


def render() -> str:
    out = [HEADER]
    for name, spec in sorted(load_tasks().items()):
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
        out.append(f"Runs in the {'heavy' if spec.heavy else 'light'} lane.\n")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
