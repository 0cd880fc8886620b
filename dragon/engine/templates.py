"""Templates: an account's named video.create definitions with ``{{field}}`` slots.

A template is stored with ``POST /v2/templates`` (``{"name": NAME, "definition": SXML}``).
A video.create that names one (``"template": NAME`` and ``"fields": {...}`` instead of
``definition``) gets, at create, the template's definition with every slot filled: the
task then holds the whole definition, as if the client had sent it, so a later change to
the template does not change a task already created. Every value is XML-escaped (``&``,
``<``, ``>`` and both quotes), so a field is only ever text or an attribute's value, never
markup: ``</text><video filename="file:///etc/passwd"/>`` is drawn as those characters. A
slot the fields leave empty is a 400 that names it; fields no slot uses are ignored.
"""

from __future__ import annotations

import re
import time
from typing import Any
from xml.sax.saxutils import escape

from dragon.database.interface import Database
from dragon.database.rows import TemplateRow
from dragon.engine.auth import Account
from dragon.errors import NoSuchTemplate, RequestError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SLOT = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
MAX_DEFINITION = 1024 * 1024  # characters: a definition is a page of XML, not a payload
QUOTES = {'"': "&quot;", "'": "&apos;"}


def checked_name(name: object, location: str = "body", field: str = "name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise RequestError(
            field,
            "a template name is 1 to 100 letters, digits, '_', '.' or '-', starting with a"
            " letter or digit",
            location,
        )
    return name


def slots(definition: str) -> list[str]:
    """The field names of ``definition``'s slots, each once, in order of first use."""
    return list(dict.fromkeys(SLOT.findall(definition)))


def fill(definition: str, fields: object, where: str = "fields") -> str:
    """``definition`` with every slot replaced by its field, XML-escaped (``where``: the
    parameter named in a refusal)."""
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise RequestError(where, "fields must be an object of field names to values")
    names = slots(definition)
    missing = [name for name in names if name not in fields]
    if missing:
        raise RequestError(
            where, f"the template needs the field {missing[0]!r} (missing: {missing})"
        )
    values: dict[str, str] = {}
    for name in names:
        value = fields[name]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RequestError(where, f"field {name!r} must be a string or a number")
        values[name] = escape(str(value), QUOTES)
    return SLOT.sub(lambda match: values[match[1]], definition)


def public(stored: TemplateRow) -> dict[str, Any]:
    """A template as the API answers it."""
    return {
        "name": stored["name"],
        "definition": stored["definition"],
        "fields": slots(stored["definition"]),
        "created_at": stored["created_at"],
        "updated_at": stored["updated_at"],
    }


class Templates:
    """The account's templates, and their use by a create."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def put(self, account: Account, name: object, definition: object) -> dict[str, Any]:
        name = checked_name(name)
        if not isinstance(definition, str) or not definition.strip():
            raise RequestError("definition", "definition must be the SXML of a movie, as text")
        if len(definition) > MAX_DEFINITION:
            raise RequestError(
                "definition", f"definition is longer than {MAX_DEFINITION} characters"
            )
        return public(await self.db.put_template(account.id, name, definition, time.time()))

    async def get(self, account: Account, name: str) -> dict[str, Any]:
        stored = await self.db.template(account.id, checked_name(name, "path"))
        if stored is None:
            raise NoSuchTemplate(f"this account has no template named {name!r}")
        return public(stored)

    async def listing(self, account: Account) -> list[dict[str, Any]]:
        return [public(t) for t in await self.db.templates(account.id)]

    async def delete(self, account: Account, name: str) -> None:
        if not await self.db.delete_template(account.id, checked_name(name, "path")):
            raise NoSuchTemplate(f"this account has no template named {name!r}")

    async def expand(
        self, account: Account, definitions: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """``definitions`` with each video.create that names a template given its filled
        ``definition`` (``template`` kept, ``fields`` dropped: the definition holds them)."""
        if not any("template" in d for d in definitions):
            return definitions
        out = []
        for i, definition in enumerate(definitions):
            if "template" in definition and definition.get("task_name") == "video.create":
                definition = await self._expanded(account, i, definition)
            out.append(definition)
        return out

    async def _expanded(
        self, account: Account, index: int, definition: dict[str, Any]
    ) -> dict[str, Any]:
        where = f"tasks[{index}].template"
        if "definition" in definition:
            raise RequestError(where, "give either a definition or a template, not both")
        name = definition["template"]
        stored = await self.db.template(account.id, checked_name(name, field=where))
        if stored is None:
            raise RequestError(where, f"this account has no template named {name!r}")
        filled = fill(stored["definition"], definition.get("fields"), f"tasks[{index}].fields")
        rest = {k: v for k, v in definition.items() if k != "fields"}
        return {**rest, "definition": filled}
