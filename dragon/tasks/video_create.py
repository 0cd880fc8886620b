"""video.create: render a movie described in SXML to a video file, with a preview and a
thumbnail.

docs/sxml.md describes the SXML accepted: the elements, the director widget dialect, what
is approximated, and our extension, cuts on the beat (``<sequence sync="beats">``). A
definition that cannot be rendered (malformed XML, a DTD, an unknown element, a ``file:``
URL) ends the task with ``{"parameters": {"definition": [...]}}`` before anything is
downloaded.

``antialias`` supersamples text (1, 2 or 4 times) and, from 2 up, kenburns sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from marshmallow import ValidationError, fields, validate, validates

from dragon.sxml import profiles, render
from dragon.sxml.parse import DefinitionErrors, parse
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Loudness, Renditions, StreamFormat, TaskSchema, Url

# Definitions up to this size are parsed and checked in the schema, when the task is
# created, so a hostile or broken one ends at once. Longer ones (up to 512 KiB) are parsed
# when the task starts, in a thread with the same error shape: parsing runs at about 7 MB/s
# and must not hold up the event loop that serves every other request.
EAGER_PARSE_CHARS = 64 * 1024
TASK_NAME = "video.create"
HEAVY = True


SIZE_FROM_PROFILE = (
    "the size of a movie comes from its profile (720p is 1280x720, square-640 is 640x640;"
    " docs/tasks.md lists them)"
)


class Schema(TaskSchema):
    # The original API lists width and height among video.create's output values, and
    # clients send them as parameters: accepted and ignored as the original did, with a word.
    IGNORED_BECAUSE: ClassVar[Mapping[str, str]] = {
        "width": SIZE_FROM_PROFILE,
        "height": SIZE_FROM_PROFILE,
    }

    definition = fields.String(required=True)
    # Filled at create (dragon.engine.templates): a task that named a template holds the
    # filled definition, and this name for the record.
    template = fields.String(
        load_default=None,
        metadata={
            "description": "instead of definition: the name of one of the account's templates"
            " (/v2/templates), its {{field}} slots filled from the fields object, XML-escaped"
        },
    )
    profile = fields.String(
        load_default=profiles.DEFAULT,
        metadata={
            "description": "the size, frame rate and bitrates, by name: the profiles of"
            " video.create in docs/tasks.md",
            "enum": sorted(profiles.PROFILES),
        },
    )
    preview = fields.Boolean(load_default=False)
    export = fields.Boolean(load_default=True)
    thumbnail_time = fields.Float(load_default=1.0)
    antialias = fields.Integer(load_default=4, validate=validate.OneOf([1, 2, 4]))
    loudness = Loudness()
    subtitles = Url(
        load_default=None,
        allow_none=True,
        metadata={"description": "an SRT or WebVTT file whose cues are burned into the export"},
    )
    format = StreamFormat("also a streaming ladder of the export (stream)")
    renditions = Renditions()

    @validates("profile")
    def _profile(self, value: str, **_: object) -> None:
        if profiles.get(value) is None:
            raise ValidationError(profiles.invalid_message(value))

    @validates("definition")
    def _definition(self, value: str, **_: object) -> None:
        if len(value) > EAGER_PARSE_CHARS:
            return  # checked by render.load, off the event loop
        try:
            parse(value)
        except DefinitionErrors as e:
            raise ValidationError(e.messages) from None


def reference_notes() -> str:
    """The profiles, after the parameters in docs/tasks.md."""
    return profiles.reference()


async def run(ctx: TaskContext) -> dict[str, Any]:
    return await render.create(ctx)
