"""The shapes of the API's answers and bodies, as marshmallow schemas, for the OpenAPI document.

They describe the wire, not a task (task parameters come from each task's own ``Schema``).
The document builder registers them as components; handlers refer to them by name
(``ref("Status")``) in the operations they declare. Every answer schema ignores unknown
fields, as clients must: answers may gain fields.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

LOCATIONS = ("body", "querystring", "header", "path", "server")
STATUSES = ("queued", "executing", "success", "error")


class _Wire(Schema):
    """Answers may gain fields; clients must ignore the ones they do not know."""

    class Meta:
        unknown = EXCLUDE


class ErrorItem(_Wire):
    name = fields.String(required=True, metadata={"description": "the parameter at fault"})
    location = fields.String(
        required=True,
        validate=validate.OneOf(LOCATIONS),
        metadata={
            "description": "where it was: body, querystring or"
            " header (credentials: where the refused one was)"
        },
    )
    description = fields.String(required=True)


class Error(_Wire):
    """A request the server refused (Cornice's error shape, as the original service)."""

    status = fields.String(required=True, validate=validate.OneOf(["error"]))
    errors = fields.List(fields.Nested(ErrorItem), required=True)


class FileError(_Wire):
    """create_file and file: no such output file, or no such task."""

    status = fields.String(required=True, validate=validate.OneOf(["error"]))
    message = fields.String(required=True)


class Events(_Wire):
    queued = fields.DateTime()
    started = fields.DateTime()
    completed = fields.DateTime()


class Callback(_Wire):
    url = fields.String(required=True)
    state = fields.String(required=True)
    attempts = fields.Integer(required=True)
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_try = fields.DateTime(allow_none=True)
    webhook_id = fields.String(required=True)


class Status(_Wire):
    """A task's status document (v2; in v1, ``result`` holds the error details instead)."""

    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    key = fields.String(required=True)
    progress = fields.Float(
        required=True,
        validate=validate.Range(min=0, max=100),
        metadata={"description": "0 while queued, 100 once ended"},
    )
    events = fields.Nested(Events, required=True)
    result = fields.Raw(
        metadata={
            "description": "the result on success (output files as"
            " URLs); a partial result while executing"
        }
    )
    waiting_for = fields.List(
        fields.String(),
        metadata={"description": "queued tasks of a chain: the input tasks not ended yet"},
    )
    error = fields.Raw(metadata={"description": "a message, or {parameters: {field: [...]}}"})
    error_code = fields.String(allow_none=True)
    task_name = fields.String(metadata={"description": "with details=true, and in GET /v2/tasks"})
    parameters = fields.Dict(metadata={"description": "with details=true; secrets masked"})
    store = fields.Dict(metadata={"description": "with details=true"})
    attempts = fields.Integer(metadata={"description": "with details=true"})
    callbacks = fields.List(fields.Nested(Callback), metadata={"description": "with details=true"})


class StoredFile(_Wire):
    name = fields.String(required=True)
    size = fields.Integer(required=True)
    last_modified = fields.String(required=True)
    url = fields.String(required=True)
    content_type = fields.String(required=True)


class Listing(_Wire):
    files = fields.List(fields.Nested(StoredFile), required=True)
    directories = fields.List(fields.String(), required=True)
    usage = fields.Integer(required=True, metadata={"description": "persistent bytes in use"})


class Deleted(_Wire):
    deleted = fields.List(fields.String(), required=True)
    freed = fields.Integer(required=True)
    usage = fields.Integer(
        required=True,
        metadata={
            "description": "bytes in use after the delete (with dry_run: after it would run)"
        },
    )


class Template(_Wire):
    name = fields.String(required=True)
    definition = fields.String(required=True, metadata={"description": "SXML with {{field}} slots"})
    fields_ = fields.List(
        fields.String(),
        required=True,
        data_key="fields",
        metadata={"description": "the slots' field names, in order of first use"},
    )
    created_at = fields.Float(required=True, metadata={"description": "epoch seconds"})
    updated_at = fields.Float(required=True, metadata={"description": "epoch seconds"})


class Templates(_Wire):
    templates = fields.List(fields.Nested(Template), required=True)


class PutTemplate(Schema):
    name = fields.String(
        required=True,
        metadata={"description": "1 to 100 letters, digits, '_', '.' or '-'"},
    )
    definition = fields.String(required=True, metadata={"description": "SXML with {{field}} slots"})


class Health(_Wire):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "degraded", "closing"]))
    problems = fields.List(fields.String(), required=True)
    queued = fields.Integer(required=True)
    executing = fields.Integer(required=True)
    subscribers = fields.Integer(required=True)


class Credentials(Schema):
    """What every authenticated body may carry besides its own fields."""

    secret = fields.String()
    api_key = fields.String()


class DeleteFiles(Credentials):
    urls = fields.List(
        fields.String(),
        metadata={"description": "absolute URLs to delete; the other filters are then ignored"},
    )
    dry_run = fields.Boolean()
    from_ = fields.String(data_key="from", metadata={"description": "ISO 8601"})
    to = fields.String(metadata={"description": "ISO 8601"})
    max_age = fields.Float(metadata={"description": "days"})


class SetExpiration(Credentials):
    days = fields.Integer(
        required=True,
        validate=validate.Range(min=0, max=36500),
        metadata={"description": "0: never delete"},
    )


# What the document declares as components, under their class names (the nested shapes,
# such as ErrorItem, join as the plugin meets them).
COMPONENTS: tuple[type[Schema], ...] = (
    Error,
    FileError,
    Status,
    Listing,
    Deleted,
    Health,
    DeleteFiles,
    SetExpiration,
    Template,
    Templates,
    PutTemplate,
)
