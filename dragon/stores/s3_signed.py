"""s3_signed: PUT the output to a pre-signed URL the user gives (through the guarded fetcher).

One signed URL takes one file. For a task with several outputs (video.create: export,
thumbnail, preview) ``url`` takes the main one (``output`` or ``export``) and the others may
be given by name in ``urls``; outputs with no URL of their own go to persistent storage.
The result gives the object's URL without its query string (the signature).
"""

from __future__ import annotations

from pathlib import Path

from dragon import errors
from dragon.net.url_policy import url_problem
from dragon.stores.base import BaseStore, Options, Producer

MAIN_OUTPUTS = ("output", "export")


class Store(BaseStore):
    type = "s3_signed"

    @classmethod
    def problems(cls, options: Options) -> list[str]:
        out = []
        urls = options.get("urls") or {}
        if "url" not in options and not urls:
            out.append("s3_signed needs a url (the pre-signed URL to upload to)")
        if not isinstance(urls, dict):
            out.append("urls must be an object mapping output names to URLs")
            urls = {}
        for label, value in [("url", options.get("url")), *urls.items()]:
            if value is not None and (problem := url_problem(value)):
                out.append(f"{label} {problem}")
        return out

    def target(self, name: str) -> str | None:
        """The signed URL output ``name`` goes to; None: it goes to persistent storage."""
        urls = self.options.get("urls") or {}
        target = urls.get(name) if isinstance(urls, dict) else None
        if target is None and name in MAIN_OUTPUTS:
            target = self.options.get("url")
        return str(target) if target is not None else None

    def sent(self, name: str, url: str) -> bool:
        target = self.target(name)
        return target is not None and url == _unsigned(target)

    async def put(self, ctx: Producer, name: str, path: Path, content_type: str) -> str:
        target = self.target(name)
        if target is None:
            return await self.stores.for_task(None).put(ctx, name, path, content_type)
        fetcher = self.stores.fetcher
        if fetcher is None:
            raise RuntimeError("s3_signed uploads through the server's fetcher; none was given")
        try:
            status, reason = await fetcher.send(
                "PUT", target, body=path, headers={"Content-Type": content_type}
            )
        except errors.TaskError as exc:
            if exc.code == errors.URL_FORBIDDEN:
                raise
            raise errors.TaskError(errors.STORAGE_ERROR, f"upload of {name} failed: {exc}") from exc
        if not 200 <= status < 300:
            raise errors.TaskError(
                errors.STORAGE_ERROR,
                f"upload of {name} failed: the signed URL answered {status} {reason}",
            )
        return _unsigned(target)


def _unsigned(url: str) -> str:
    """The object's URL without its query (the signature): what the result shows."""
    return url.split("?", 1)[0]
