"""Expected failures are values with stable codes; exceptions are for bugs.

A task raises ``TaskError`` (or ``ParameterError``) for anything a user can act on. The
``code`` lands unchanged in the status document's ``error_code`` and in the errback body,
so clients can branch on it. Anything else that escapes a task is logged with its
traceback and reported as ``internal_error``.

A request the engine refuses raises a ``Refused`` exception that says what happened
(``Unauthorized``, ``SecretRequired``, ``RateLimited``, ``Overloaded``, ``TooManyActive``,
``LowDisk``, ``NoSuchPath``, ``CursorGone``, ``UploadRefused``),
in the engine's words: no status code, no header. ``dragon.handlers.errors`` is the one
place that turns them into HTTP answers.
"""

from __future__ import annotations

import errno
from typing import Any

# Stable machine words for ``error_code``. Add to this list; never rename an entry.
PARAMETERS = "parameters"
URL_FORBIDDEN = "url_forbidden"
TOO_MANY_REDIRECTS = "too_many_redirects"
DOWNLOAD_FAILED = "download_failed"
DOWNLOAD_TOO_LARGE = "download_too_large"
DOWNLOAD_TOO_SLOW = "download_too_slow"
SEND_FAILED = "send_failed"
TIMEOUT = "timeout"
UNSUPPORTED_MEDIA = "unsupported_media"
INVALID_MEDIA = "invalid_media"
MEDIA_TOO_LARGE = "media_too_large"
IMAGE_TOO_LARGE = "image_too_large"
STORAGE_ERROR = "storage_error"
PROCESS_FAILED = "process_failed"
RESOURCE_LIMIT = "resource_limit"
DISK_FULL = "disk_full"
UPLOAD_UNAUTHORIZED = "upload_unauthorized"
UPLOAD_QUOTA_EXCEEDED = "upload_quota_exceeded"
UPLOAD_FAILED = "upload_failed"
INTERRUPTED = "interrupted"
INTERNAL_ERROR = "internal_error"
CANCELLED = "cancelled"  # ended by its owner (POST /v2/cancel), queued or executing
UNKNOWN_UPLOAD = "unknown_upload"  # ``upload:ID``: not a finished upload of the account
DEPENDENCY_FAILED = "dependency_failed"  # a chain's input task did not succeed (or has no output)


def out_of_space(exc: BaseException) -> bool:
    """Did ``exc`` fail because the disk (or the user's quota on it) is full?"""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class TaskError(Exception):
    """A task failure a user can act on: ``code`` is stable, ``message`` is for people.

    ``stage`` (validate, fetch, probe, process, store) and ``tool`` (the failed tool run:
    ``argv``, ``exit_code``, ``stderr``) are filled in where the failure surfaces, for the
    task's diagnostics (``details=true``); they stay None when unknown.
    """

    stage: str | None = None
    tool: dict[str, Any] | None = None

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        # So a TaskError raised in a process-pool worker arrives whole in the server.
        return (self.__class__, (self.code, self.message))


class ParameterError(TaskError):
    """Invalid task parameters, reported as ``{"parameters": {field: [messages]}}``."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__(PARAMETERS, "invalid parameters")
        self.fields = fields

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return (self.__class__, (self.fields,))

    @classmethod
    def one(cls, field: str, message: str) -> ParameterError:
        return cls({field: [message]})


class RequestError(Exception):
    """A malformed request: answered with HTTP ``status`` in the Dragon API's 400 shape."""

    def __init__(
        self,
        name: str,
        description: str,
        location: str = "body",
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.name = name
        self.description = description
        self.location = location
        self.status = status
        self.headers = headers or {}


class Refused(Exception):
    """A request the engine will not carry out; ``description`` says why, for people.

    ``retry_after`` is set (in seconds) when the same request may succeed later."""

    retry_after: float | None = None

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class Unauthorized(Refused):
    """No credential, or one that names no account, or an api key used from a referrer
    the account does not list. ``source`` is where the credential at fault was presented
    (as the caller labelled it when it located the credential), None when none was."""

    def __init__(self, description: str, source: str | None = None) -> None:
        super().__init__(description)
        self.source = source


class SecretRequired(Refused):
    """An api key (public in web pages) was presented for an action that needs the
    secret key, such as deleting files. ``source`` is where the api key was presented."""

    def __init__(self, description: str, source: str) -> None:
        super().__init__(description)
        self.source = source


class RateLimited(Refused):
    """The account creates faster than its rate: its bucket refills in ``retry_after``."""

    def __init__(self, description: str, retry_after: float) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class Overloaded(Refused):
    """The server takes no task now: its queue is full, or it is shutting down."""

    retry_after = 5.0


class TooManyActive(Refused):
    """The account has as many queued and executing tasks as it may: retry when some end."""

    retry_after = 10.0


class NoSuchPath(Refused):
    """Nothing is stored at or under the storage path asked for."""


class NoSuchTemplate(Refused):
    """The account has no template of the name asked for."""


class CursorGone(Refused):
    """The event feed's cursor is older than its retention: events after it were deleted."""


class LowDisk(Refused):
    """The data disk is below its reserve: nothing was created, since a task could not
    write its output nor even its end."""

    retry_after = 60.0


class UploadRefused(Refused):
    """A resumable upload request (tus) the engine will not carry out; ``reason`` says
    which of the protocol's refusals it is: ``unknown`` (no such upload of the account),
    ``gone`` (expired), ``offset`` (not where the upload stands), ``too_large`` (past the
    upload's length, the largest upload or the account's unfinished bytes), ``checksum``
    (the body is not what its Upload-Checksum says), ``busy`` (another request is writing
    it), ``invalid`` (a header the protocol does not allow) or ``unavailable`` (the bucket
    holding it failed: retry later)."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
