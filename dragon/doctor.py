"""``dragon doctor``: is this machine ready to serve? Each check prints one line, and a
failed one adds how to fix it; the exit status is 1 if anything failed. A ``note`` is worth
knowing but fails nothing (no database yet, no server running).

It checks what tasks need at run time rather than at start-up, where a missing piece
would only show as failed tasks: ffmpeg and ffprobe with the encoders and filters dragon
uses, ImageMagick, the fonts text is drawn with, the data folder, the database, and the
S3 bucket when one is configured; then whether a server answers where the clients would
look for one. It changes nothing: a database that does not exist is reported, not created
(``dragon doctor`` run from the wrong folder must not leave an empty one there).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import httpx

from dragon.client.config import ConfigError, read_config
from dragon.config import Settings
from dragon.runtime.tool_versions import imagemagick_binary, tool_versions

APT = "apt-get install ffmpeg imagemagick fonts-dejavu-core (or: make system-tools)"
# What the tasks ask of ffmpeg (dragon/media, dragon/tasks, dragon/sxml).
ENCODERS = (
    "libx264",
    "aac",
    "libmp3lame",
    "mp2",
    "wmav1",
    "wmav2",
    "libvorbis",
    "pcm_s16le",
    "ppm",
    "png",
    "mjpeg",
)
FILTERS = (
    "scale",
    "crop",
    "pad",
    "fps",
    "setsar",
    "setpts",
    "format",
    "trim",
    "atrim",
    "concat",
    "overlay",
    "xfade",
    "zoompan",
    "rotate",
    "reverse",
    "fade",
    "afade",
    "volume",
    "amix",
    "adelay",
    "apad",
    "aresample",
    "asplit",
    "split",
    "thumbnail",
    "lut",
    "eq",
    "color",
    "anullsrc",
)
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
)
LOW_DISK = 1024**3
SERVER_TIMEOUT = 5.0


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    note: bool = False  # worth saying, not a problem: printed "note", fails nothing


def data_dir_source(option: str | None) -> str:
    """Where the data folder's path came from, for the lines that name it."""
    if option:
        return "--data-dir"
    if os.environ.get("DRAGON_DATA_DIR"):
        return "DRAGON_DATA_DIR"
    return f"./var of the current folder, {Path.cwd()}: pass --data-dir or set DRAGON_DATA_DIR"


def listed(argv: list[str]) -> set[str]:
    """The names ``ffmpeg -encoders`` / ``-filters`` lists (second column)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return set()
    names = set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(" =") and "=" not in parts[0]:
            names.add(parts[1])
    return names


def check_tools() -> list[Check]:
    """ffmpeg and ffprobe, what ffmpeg was built with, ImageMagick, the fonts and Pillow."""
    versions = tool_versions()
    checks = [_on_path(tool, versions[tool]) for tool in ("ffmpeg", "ffprobe")]
    if shutil.which("ffmpeg"):
        checks += _ffmpeg_builds()
    magick = imagemagick_binary()
    checks.append(
        Check(
            "ImageMagick",
            bool(magick and versions["imagemagick"]),
            f"{versions['imagemagick']} ({magick})" if magick else "not found on PATH",
            APT,
        )
    )
    checks.append(_fonts())
    checks.append(Check("Pillow", True, versions["pillow"] or "?"))
    return checks


def _on_path(tool: str, version: str | None) -> Check:
    path = shutil.which(tool)
    if path and version:
        return Check(tool, True, f"{version} ({path})")
    return Check(tool, False, "not found on PATH", APT)


def _ffmpeg_builds() -> list[Check]:
    """Whether this ffmpeg has every encoder and filter the tasks use (not all builds do)."""
    return [
        _all_listed(
            "ffmpeg encoders",
            ENCODERS,
            listed(["ffmpeg", "-hide_banner", "-encoders"]),
            "install an ffmpeg built with them (Debian's ffmpeg package has them all)",
        ),
        _all_listed(
            "ffmpeg filters",
            FILTERS,
            listed(["ffmpeg", "-hide_banner", "-filters"]),
            "install ffmpeg 5.1 or newer (xfade needs 4.3)",
        ),
    ]


def _all_listed(name: str, needed: tuple[str, ...], found: set[str], fix: str) -> Check:
    missing = [n for n in needed if n not in found]
    detail = f"missing: {', '.join(missing)}" if missing else f"{len(needed)} needed, all here"
    return Check(name, not missing, detail, fix)


def _fonts() -> Check:
    missing = [f for f in FONTS if not (FONT_DIR / f).is_file()]
    return Check(
        "fonts",
        not missing,
        f"missing in {FONT_DIR}: {', '.join(missing)}" if missing else f"DejaVu in {FONT_DIR}",
        "apt-get install fonts-dejavu-core",
    )


def check_data(settings: Settings, source: str = "") -> list[Check]:
    path = settings.data_path
    folder = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
    if not os.access(folder, os.W_OK | os.X_OK):
        return [
            Check(
                "data folder",
                False,
                f"{folder} is not writable by this user",
                "chown the folder to the server's user, or set DRAGON_DATA_DIR",
            )
        ]
    free = shutil.disk_usage(folder).free
    detail = f"{path} ({free / 1024**3:.1f} GiB free)"
    if not path.exists():
        detail += ", not created yet"
    if source:
        detail += f" (from {source})"
    if free < LOW_DISK:
        return [
            Check(
                "data folder",
                False,
                detail + ": less than 1 GiB left",
                "free disk space or point DRAGON_DATA_DIR at a larger disk",
            )
        ]
    return [Check("data folder", True, detail)]


async def check_database(settings: Settings) -> list[Check]:
    from dragon.database import open_database

    where = "PostgreSQL" if settings.database_url else f"SQLite {settings.db_path}"
    if not settings.database_url and not settings.db_path.exists():
        # Opening it would create it: an empty database in whatever folder doctor ran from.
        return [
            Check(
                "database",
                True,
                f"no database at {settings.db_path}: `dragon serve` creates it on first start"
                " (a server that already ran keeps it in its own data folder: run doctor with"
                " the same --data-dir or DRAGON_DATA_DIR)",
                note=True,
            )
        ]
    try:
        database = await asyncio.to_thread(open_database, settings)
    except Exception as exc:
        return [
            Check(
                "database",
                False,
                f"{where}: {type(exc).__name__}: {exc}",
                "check DRAGON_DATABASE_URL, or the database file's owner and disk",
            )
        ]
    try:
        accounts = await database.list_accounts()
    except Exception as exc:
        return [
            Check(
                "database",
                False,
                f"{where}: {type(exc).__name__}: {exc}",
                "restore the database from a backup, or move it aside to start afresh",
            )
        ]
    finally:
        await asyncio.to_thread(database.close)
    return [Check("database", True, f"{where}, schema up to date, {len(accounts)} accounts")]


def server_url(settings: Settings) -> tuple[str, str | None]:
    """The server the clients would use, and where that was configured (None: nowhere, so
    this machine's own address from the settings)."""
    if os.environ.get("DRAGON_URL"):
        return os.environ["DRAGON_URL"].rstrip("/"), "DRAGON_URL"
    try:
        saved = read_config().get("url")
    except ConfigError:
        saved = None
    if saved:
        return saved.rstrip("/"), "dragon login"
    return settings.base_url, None


async def check_server(settings: Settings) -> list[Check]:
    """Does a dragon server answer ``/healthz`` where the clients would look for one?"""
    url, source = server_url(settings)
    named = f"{url} (from {source})" if source else url
    try:
        async with httpx.AsyncClient(timeout=SERVER_TIMEOUT) as client:
            response = await client.get(url + "/healthz")
    except httpx.HTTPError as exc:
        reason = f"nothing answers at {named}: {type(exc).__name__}"
        if source is None:  # no server was asked for: one not running is worth a note
            return [Check("server", True, reason + "; `dragon serve` starts one", note=True)]
        fix = "start the server, or correct DRAGON_URL (or run `dragon login --server URL`)"
        return [Check("server", False, reason, fix)]
    try:
        health = response.json()
    except ValueError:
        health = None
    if not isinstance(health, dict) or "problems" not in health:
        detail = f"{named} answered HTTP {response.status_code}, not as a dragon server does"
        return [Check("server", False, detail, "check the URL")]
    if response.status_code != 200:
        problems = "; ".join(str(p) for p in health.get("problems", [])) or "no reason given"
        return [Check("server", False, f"{named} cannot take tasks: {problems}")]
    return [
        Check(
            "server",
            True,
            f"{named}: {health.get('queued', '?')} queued, {health.get('executing', '?')} running",
        )
    ]


async def check_s3(settings: Settings) -> list[Check]:
    if not settings.s3_bucket:
        return []
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    where = f"bucket {settings.s3_bucket!r}" + (
        f" at {settings.s3_endpoint_url}" if settings.s3_endpoint_url else ""
    )
    config = AioConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10)
    try:
        async with get_session().create_client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region,
            config=config,
        ) as client:
            await client.head_bucket(Bucket=settings.s3_bucket)
    except Exception as exc:
        return [
            Check(
                "S3",
                False,
                f"{where}: {type(exc).__name__}: {exc}",
                "check DRAGON_S3_BUCKET, DRAGON_S3_ENDPOINT_URL and the AWS_ credentials"
                " (the bucket must exist and allow HeadBucket, PutObject, DeleteObject)",
            )
        ]
    return [Check("S3", True, where)]


async def run_checks(settings: Settings, source: str = "") -> list[Check]:
    checks = await asyncio.to_thread(check_tools)
    checks += check_data(settings, source)
    checks += await check_database(settings)
    checks += await check_s3(settings)
    checks += await check_server(settings)
    return checks


def report(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        mark = "FAIL" if not check.ok else "note" if check.note else "ok  "
        lines.append(f"{mark}  {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"      fix: {check.fix}")
    failed = sum(not c.ok for c in checks)
    notes = sum(c.ok and c.note for c in checks)
    summary = (
        f"{failed} problem{'s' if failed != 1 else ''} found" if failed else "all checks passed"
    )
    if notes:
        summary += f" ({notes} note{'s' if notes != 1 else ''})"
    lines.append(summary)
    return "\n".join(lines)


def doctor(settings: Settings, source: str = "") -> int:
    """Print the checks; 0 when all passed, 1 otherwise. ``source``: where the data folder's
    path came from (``data_dir_source``)."""
    checks = asyncio.run(run_checks(settings, source))
    print(report(checks))
    return 0 if all(c.ok for c in checks) else 1
