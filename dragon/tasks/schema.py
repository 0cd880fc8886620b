"""The marshmallow base every task schema extends, and the field types tasks share.

Every task accepts ``url_callback``, ``url_errback``, ``task_store``, ``task_metas`` and
``batch``
(old clients send ``task_metas`` on every task, docs/compat.md). Unknown keys are ignored, as the
original service did, so clients that send extra fields keep working; ``ignored_parameters``
names each one for the result's ``warnings``, so a typo (``widht``) does not pass unseen.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from dragon.media import streaming, watermark
from dragon.net import scrub
from dragon.net.url_policy import source_problem, url_problem


class Url(fields.String):
    """An input of the task: an http(s) URL that passes the syntax gate of
    ``dragon.net.url_policy``, or ``upload:ID``, a finished upload of the account
    (``uploads=False``: a URL only, for where the server sends something, as callbacks)."""

    def __init__(self, *, uploads: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.uploads = uploads

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: object
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = source_problem(text) if self.uploads else url_problem(text)
        if problem:
            raise ValidationError(f"{scrub.scrub(text, limit=100)!r} {problem}")  # no signature
        return text


class Color(fields.String):
    """A ``#RRGGBB`` colour, returned as an ``(r, g, b)`` tuple.

    A string on the wire (so the OpenAPI document says ``string``), a tuple once loaded:
    hence the override's different return type.
    """

    _pattern = re.compile(r"^\s*#?([0-9a-fA-F]{6})\s*$")

    def _deserialize(  # type: ignore[override]
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: object
    ) -> tuple[int, int, int]:
        text = super()._deserialize(value, attr, data, **kwargs)
        match = self._pattern.match(text)
        if not match:
            raise ValidationError("must be a colour like #RRGGBB")
        digits = match.group(1)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def Size(**kwargs: Any) -> fields.Integer:  # noqa: N802 - reads like a field class
    """A pixel dimension: 1 to 16384."""
    return fields.Integer(validate=validate.Range(min=1, max=16384), **kwargs)


def Choice(choices: Iterable[str], **kwargs: Any) -> fields.String:  # noqa: N802
    """One of ``choices``; the reference and the OpenAPI document list them."""
    return fields.String(validate=validate.OneOf(choices), **kwargs)


class Crop(fields.Boolean):
    """``crop``: a boolean as marshmallow's ``Boolean`` reads one (``true``, ``"yes"``,
    ``1``...), or ``"smart"``: crop around the most salient region rather than the centre
    (``dragon.media.saliency``). Loads as ``True``, ``False`` or ``"smart"``."""

    SMART = "smart"
    default_error_messages = {"invalid": 'must be true, false or "smart"'}

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "description": 'fill the box and crop: true around the centre, "smart" around '
            "the most interesting region",
            # For OpenAPI: Boolean alone would promise booleans only.
            "type": ["boolean", "string"],
            "enum": [True, False, self.SMART],
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == self.SMART:
            return self.SMART
        return super()._deserialize(value, attr, data, **kwargs)


def Loudness() -> fields.Float:  # noqa: N802
    """``loudness``: a target integrated loudness in LUFS (EBU R128), -70 to -5; None keeps
    the source's (``dragon.media.loudness``)."""
    return fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=-70, max=-5),
        metadata={"description": "normalise to this integrated loudness (LUFS, EBU R128)"},
    )


class WatermarkSchema(Schema):
    """``watermark``: a logo drawn on the output (``dragon.media.watermark``)."""

    class Meta:
        unknown = EXCLUDE

    url = Url(required=True, metadata={"description": "the logo (PNG with alpha, JPEG...)"})
    position = Choice(list(watermark.POSITIONS), load_default="bottom-right")
    size = fields.Float(
        load_default=0.15,
        validate=validate.Range(min=0.01, max=1),
        metadata={"description": "the logo's width, as a fraction of the output's width"},
    )
    opacity = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=1))
    margin = fields.Float(
        load_default=0.02,
        validate=validate.Range(min=0, max=0.5),
        metadata={"description": "gap to the edges, as a fraction of the output's width"},
    )

    @post_load
    def _spec(self, data: dict[str, Any], **_: Any) -> watermark.Watermark:
        return watermark.Watermark(**data)


class RenditionSchema(Schema):
    """One rung of an HLS or DASH ladder (``dragon.media.streaming``)."""

    class Meta:
        unknown = EXCLUDE

    height = fields.Integer(required=True, validate=validate.Range(min=2, max=4320))
    bitrate = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=100, max=100_000),
        metadata={"description": "video kbit/s; by default scaled from the default ladder's"},
    )


def StreamFormat(what: str) -> fields.String:  # noqa: N802
    """``format``: ``file`` (as before), or ``hls``/``dash`` for ``what``."""
    return Choice(
        ["file", "hls", "dash"],
        load_default="file",
        metadata={"description": f"hls or dash: {what}"},
    )


def Renditions() -> fields.List[Any]:  # noqa: N802
    """``renditions``: the ladder's rungs; None for the default ladder."""
    return fields.List(
        fields.Nested(RenditionSchema),
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=streaming.MAX_RENDITIONS),
        metadata={
            "description": "the ladder, tallest first; by default up to three rungs of"
            " 1080, 720, 480, 360 and 240 lines, never taller than the source"
        },
    )


def Watermark() -> fields.Nested:  # noqa: N802
    return fields.Nested(WatermarkSchema, load_default=None, allow_none=True)


class TaskStore(fields.Dict):
    """``task_store``: an object with a ``type``; the store module checks the rest."""

    def _validate(self, value: object) -> None:
        if isinstance(value, dict) and not isinstance(value.get("type", "persistent"), str):
            raise ValidationError("type must be a string")
        super()._validate(value)


class TaskSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    # Why a parameter that is not one of the task's is ignored, when there is more to say
    # than "unknown" (a size given to a task whose size comes from elsewhere).
    IGNORED_BECAUSE: ClassVar[Mapping[str, str]] = {}

    url_callback = Url(uploads=False, load_default=None, allow_none=True)
    url_errback = Url(uploads=False, load_default=None, allow_none=True)
    task_store = TaskStore(load_default=None, allow_none=True)
    task_metas = fields.Raw(load_default=None, allow_none=True)
    batch = fields.Boolean(
        load_default=False,
        metadata={
            "description": "run in the batch class (behind interactive work, at a lower CPU"
            " priority) even if the task is interactive by nature"
        },
    )


def validation_messages(error: ValidationError) -> dict[str, list[str]]:
    """Flatten marshmallow's messages into ``{field: [message, ...]}``."""
    out: dict[str, list[str]] = {}
    messages = error.messages if isinstance(error.messages, dict) else {"_": error.messages}
    for field, msgs in messages.items():
        if isinstance(msgs, dict):
            flat = [
                f"{k}: {m}" for k, v in msgs.items() for m in (v if isinstance(v, list) else [v])
            ]
        elif isinstance(msgs, list):
            flat = [str(m) for m in msgs]
        else:
            flat = [str(msgs)]
        out[str(field)] = [
            m.replace("Missing data for required field.", "this field is required") for m in flat
        ]
    return out


# Keys of a task definition that the server reads itself, beside the task's own schema: never
# reported as ignored. ``secret`` and ``api_key`` may come inside a definition given in a query
# string; ``block`` and ``details`` are options of the request that some clients repeat in
# each task.
SERVER_KEYS = frozenset({"task_name", "secret", "api_key", "block", "details"})
MAX_IGNORED = 20  # warnings about ignored parameters, per task


def ignored_parameters(schema: Schema, params: Mapping[str, Any]) -> list[str]:
    """One warning per parameter of ``params`` that ``schema`` ignores (unknown keys, which
    are accepted, as the original service accepted them), nested objects included
    (``watermark.posiiton``), each with the parameter it may have meant."""
    because: Mapping[str, str] = getattr(schema, "IGNORED_BECAUSE", {})
    warnings = []
    for path, name, known in _unknown(schema, params, "", SERVER_KEYS):
        reason = because.get(path)
        if reason is None:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            reason = (
                f"did you mean {close[0]!r}?" if close else "it is not a parameter of this task"
            )
        warnings.append(f"parameter {path[:100]!r} was ignored: {reason}")
        if len(warnings) == MAX_IGNORED:
            break
    return warnings


def _unknown(
    schema: Schema, data: Mapping[str, Any], prefix: str, server_keys: frozenset[str]
) -> Iterable[tuple[str, str, list[str]]]:
    """``(path, name, known names)`` of each key of ``data`` that ``schema`` ignores."""
    if schema.unknown != EXCLUDE:  # a schema that keeps or refuses unknown keys says so itself
        return
    by_key = {f.data_key or name: f for name, f in schema.fields.items() if not f.dump_only}
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        field = by_key.get(key)
        if field is None:
            if key not in server_keys:
                yield prefix + key, key, list(by_key)
        else:
            yield from _nested(field, value, prefix + key)


def _nested(
    field: fields.Field[Any], value: object, path: str
) -> Iterable[tuple[str, str, list[str]]]:
    """The ignored keys inside an object parameter (``watermark``) or a list of objects
    (``renditions``)."""
    inner: fields.Field[Any] = field.inner if isinstance(field, fields.List) else field
    if not (isinstance(inner, fields.Nested) and isinstance(inner.schema, Schema)):
        return
    items: list[tuple[int | None, object]] = [(None, value)]
    if (inner is not field or inner.many) and isinstance(value, list):
        items = list(enumerate(value))
    for index, item in items:
        if isinstance(item, Mapping):
            where = path if index is None else f"{path}[{index}]"
            yield from _unknown(inner.schema, item, where + ".", frozenset())
