"""html.scrape: list the images and videos a web page offers, and its title.

Pages up to 5 MB are read (a page larger than that is not a page people scrape for
media). URLs are resolved against the page's final URL, after redirects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dragon import errors
from dragon.media import html_hits
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url

TASK_NAME = "html.scrape"
HEAVY = False
MAX_PAGE_BYTES = 5 * 1024 * 1024


class Schema(TaskSchema):
    url = Url(required=True)


def scrape_file(
    path: str, page_url: str, charset: str | None, mime: str | None
) -> dict[str, Any] | None:
    """Process-pool entry point: read the downloaded page and scrape it (None: not HTML)."""
    return html_hits.scrape(Path(path).read_bytes(), page_url, charset, mime)


async def run(ctx: TaskContext) -> dict[str, Any]:
    """The page comes through the guarded fetcher and is parsed in the process pool by
    ``dragon.media.html_hits``: lexbor parses 5 MB in tens of milliseconds, which the event
    loop should not spend. A page nested so deeply that its parse would cost far more is
    refused (``invalid_media``) before it is parsed.
    """
    url = ctx.params["url"]
    download = await ctx.fetch(url, max_bytes=MAX_PAGE_BYTES)
    ctx.progress(50)
    page_url = getattr(download, "url", None) or url
    # The Content-Type charset, when the fetcher exposes it; else the page's <meta>.
    charset = getattr(download, "charset", None)
    try:
        found = await ctx.in_process(
            scrape_file, str(download.path), page_url, charset, download.mime
        )
    except html_hits.PageTooComplex as exc:
        raise errors.TaskError(errors.INVALID_MEDIA, f"{url}: {exc}") from None
    if found is None:
        raise errors.TaskError(
            errors.UNSUPPORTED_MEDIA,
            f"{url} is not an HTML page ({download.mime or 'unknown type'})",
        )
    for kind in found.pop("truncated"):
        if kind == "page_title":
            ctx.warn(f"page_title is cut to its first {html_hits.MAX_TITLE_CHARS} characters")
        else:
            ctx.warn(
                f"only the first {kind} of the page are listed (at most {html_hits.MAX_HITS},"
                f" and {html_hits.MAX_HIT_BYTES // 1024} KB of URLs)"
            )
    return found
