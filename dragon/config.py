"""Every setting, declared once as a field of ``Settings``: its type, default and help.

Values come from CLI flags, then ``DRAGON_<NAME>`` environment variables, then the defaults
below. ``Settings.load`` validates them at start-up so a typo fails fast instead of at the
first task. ``tests/test_docs.py`` checks that docs/settings.md lists each one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GiB = 1024**3
MiB = 1024**2
MAX_PRESIGN_SECONDS = 7 * 86400  # the longest a signature version 4 URL may be valid


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str

    @property
    def env(self) -> str:
        return "DRAGON_" + self.name.upper()


def setting(default: Any, help: str) -> Any:
    """A ``Settings`` field: its default, and the help line that docs/settings.md shows."""
    return dataclasses.field(default=default, metadata={"help": help})


def _parse(setting: Setting, raw: Any) -> Any:
    if setting.type is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{setting.env}: expected a boolean, got {raw!r}")
    try:
        return setting.type(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{setting.env}: expected {setting.type.__name__}, got {raw!r}") from None


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = setting("127.0.0.1", "Address the API listens on.")
    port: int = setting(8080, "Port the API listens on.")
    data_dir: str = setting("./var", "Folder for the database, local storage and temp files.")
    public_url: str = setting("", "Base URL of output files; default: the server's own address.")
    concurrency: int = setting(
        0, "Batch tasks (renders, converts) run at once; 0 means the number of cores."
    )
    interactive_concurrency: int = setting(
        0, "Interactive tasks (thumbnails, strips) run at once; 0 means the number of cores."
    )
    light_concurrency: int = setting(64, "Light tasks (hello, *.info, uploads) run at once.")
    tool_nice: int = setting(
        10,
        "Niceness (0-19) of tools and pool workers: below the API, which stays responsive.",
    )
    batch_nice: int = setting(
        19,
        "Niceness (0-19) of batch tasks' tools: below interactive ones, which get the CPU"
        " first while batch work fills it otherwise.",
    )
    task_modules: str = setting("", "Extra task modules (plugins) to load, comma-separated.")
    store_modules: str = setting(
        "", "Extra store modules (plugins, each with a Store class) to load, comma-separated."
    )
    max_attempts: int = setting(3, "Boots a task may be started on before it ends interrupted.")
    shutdown_grace_seconds: float = setting(30.0, "How long running tasks may finish on SIGTERM.")
    task_timeout_seconds: float = setting(3600.0, "Longest a task may run.")
    sqlite_synchronous: str = setting("FULL", "SQLite synchronous pragma: FULL or NORMAL.")
    database_url: str = setting(
        "",
        "postgresql://user@host:port/db to share one PostgreSQL between several nodes"
        " (needs S3 for files); empty: SQLite in the data folder.",
    )
    node_name: str = setting("", "This node's name in a cluster; default: host name and pid.")
    lease_seconds: float = setting(
        30.0, "A node silent this long loses its running tasks to the others (PostgreSQL)."
    )
    max_body_bytes: int = setting(10 * MiB, "Largest request body (413 above).")
    max_tasks_per_request: int = setting(1000, "Most tasks in one create (400 above).")
    max_queued_tasks: int = setting(100_000, "Queued tasks before creates get 503.")
    create_rate: float = setting(
        1000.0, "Tasks an account may create per second (429 above); 0: no limit."
    )
    create_burst: float = setting(
        5000.0, "Tasks an account may create at once before the rate applies."
    )
    admission_seconds: float = setting(
        2.0,
        "An account whose queued and executing tasks exceed what this node ends in this many"
        " seconds (measured while busy) gets 429 on creates until they drain; 0: off.",
    )
    admission_min_backlog: int = setting(
        1000, "Queued and executing tasks an account may always have, whatever the capacity."
    )
    stream_queue_size: int = setting(
        256,
        "Statuses a stream may lag behind before it re-reads them from the database.",
    )
    stream_write_timeout_seconds: float = setting(
        60.0,
        "A stream whose reader stops reading this long is closed.",
    )
    http_idle_timeout_seconds: float = setting(
        75.0,
        "A client connection idle this long (between requests, or while sending a request"
        " head or body) is closed.",
    )
    max_connections: int = setting(
        0,
        "Client connections open at once (past it the oldest idle one is closed, or if none is"
        " idle the new one answered 503); 0: derived from the file-descriptor limit, keeping"
        " descriptors for the tasks.",
    )
    allow_private_urls: bool = setting(False, "Fetch loopback/private addresses (dev, tests).")
    max_download_bytes: int = setting(1 * GiB, "Largest source download, after decompression.")
    max_task_download_bytes: int = setting(
        4 * GiB,
        "Most bytes all the sources of one task may add up to.",
    )
    fetch_connect_timeout: float = setting(10.0, "Seconds to connect to a source.")
    fetch_read_timeout: float = setting(30.0, "Seconds a source may stay silent.")
    fetch_min_rate_bytes: int = setting(
        4096, "Slowest average a download may keep over a window (download_too_slow below)."
    )
    fetch_min_rate_window_seconds: float = setting(
        20.0, "Window over which fetch_min_rate_bytes is averaged."
    )
    max_account_downloads: int = setting(
        16, "Downloads one account's tasks may run at once (they hold no processing slot)."
    )
    fetch_host_connections: int = setting(
        8,
        "Connections one account's tasks may have open to one host at once; each account has"
        " its own share, and its tasks past it wait their turn (untimed).",
    )
    fetch_total_timeout: float = setting(
        600.0, "Seconds a whole download may take (not counting a wait for a connection)."
    )
    max_redirects: int = setting(5, "Redirect hops followed per download.")
    max_pixels: int = setting(100_000_000, "Largest image or video frame, in pixels.")
    max_media_duration: float = setting(4 * 3600.0, "Longest audio or video source, in seconds.")
    max_media_streams: int = setting(32, "Most streams in a media source.")
    max_output_bytes: int = setting(4 * GiB, "Largest file a tool may write (ffmpeg -fs).")
    min_free_bytes: int = setting(
        256 * MiB,
        "Space kept free on the data disk: tools' outputs are capped to leave it, and creates"
        " get 503 while less is free (tasks that run out end disk_full).",
    )
    tool_memory_bytes: int = setting(
        2 * GiB,
        "Address space each tool process (ffmpeg, ffprobe) may use; a task whose tool runs"
        " out ends with error_code resource_limit.",
    )
    x264_preset: str = setting("veryfast", "x264 preset of video encodes (speed vs size).")
    reverse_segment_bytes: int = setting(
        400 * MiB,
        "Decoded frames video.reverse holds at once (memory bound).",
    )
    video_create_memory_bytes: int = setting(
        384 * MiB,
        "Input memory one video.create ffmpeg run may use (longer movies render in parts).",
    )
    max_video_duration: float = setting(600.0, "Longest video.create output, in seconds.")
    map_tile_url: str = setting(
        "",
        'Raster tile server for video.create\'s <image type="map">, with {z}, {x} and {y}'
        " (e.g. https://tile.example.org/{z}/{x}/{y}.png); empty: maps end the task in error"
        " (a director theme's map becomes a grey card).",
    )
    map_attribution: str = setting(
        "© OpenStreetMap contributors",
        "Attribution written on every map, as the tile server's licence asks.",
    )
    video_create_max_render_seconds: float = setting(
        3600.0,
        "Longest a video.create render may be estimated to take (docs/sxml.md, cost); a"
        " costlier definition is refused at once, one above half of it warned (0: no bound)."
        " The task timeout by default: a movie that may finish is not refused.",
    )
    volatile_days: int = setting(7, "Days files in the volatile store are kept.")
    task_retention_days: float = setting(
        30.0, "Days an ended task's status is kept (0: forever); its files follow their store."
    )
    events_days: float = setting(
        7.0, "Days the event feed (/v2/events) keeps a status change (0: forever)."
    )
    sweep_interval_seconds: float = setting(3600.0, "How often expired files and tasks go.")
    webhook_timeout_seconds: float = setting(10.0, "Seconds a callback receiver may take.")
    webhook_max_attempts: int = setting(5, "Callback deliveries tried before giving up.")
    webhook_first_delay_seconds: float = setting(10.0, "Delay before the first callback retry.")
    s3_bucket: str = setting("", "Store persistent/volatile files in this S3 bucket.")
    s3_endpoint_url: str = setting("", "S3-compatible endpoint (MinIO, moto, ...).")
    s3_public_url: str = setting(
        "", "Base URL (a CDN) of direct output URLs; setting it turns DRAGON_S3_DIRECT_URLS on."
    )
    s3_direct_urls: bool = setting(
        False,
        "Output URLs point straight into the bucket, which must then let anyone read them;"
        " off: URLs on this server that redirect to a pre-signed GET, so the bucket may stay"
        " private (docs/scaling.md).",
    )
    s3_presign_seconds: int = setting(
        3600,
        "How long the pre-signed GET an output URL redirects to stays valid (at most 604800);"
        " a new one is signed at each request.",
    )
    s3_region: str = setting("us-east-1", "S3 region.")
    youtube_api_url: str = setting(
        "https://www.googleapis.com",
        "YouTube Data API base URL (video.upload.youtube, youtube store); path kept.",
    )
    vimeo_api_url: str = setting(
        "https://api.vimeo.com",
        "Vimeo API base URL (video.upload.vimeo); path kept.",
    )
    facebook_graph_url: str = setting(
        "https://graph-video.facebook.com",
        "Facebook Graph API base URL for video uploads (video.upload.fb); path kept.",
    )
    facebook_graph_version: str = setting("v23.0", "Graph API version of video.upload.fb.")
    upload_chunk_bytes: int = setting(
        16 * MiB,
        "Bytes per upload request to YouTube and Vimeo (YouTube: a multiple of 256 KiB).",
    )
    upload_hours: float = setting(
        24.0,
        "Hours an unfinished resumable upload (/v2/uploads) is kept before it expires; a"
        " finished one is kept as long after its last byte, for tasks to read.",
    )
    max_upload_bytes: int = setting(1 * GiB, "Largest resumable upload (Tus-Max-Size; 413 above).")
    max_pending_upload_bytes: int = setting(
        8 * GiB,
        "Most bytes one account's unfinished resumable uploads may add up to (413 above).",
    )
    upload_max_tries: int = setting(
        8,
        "Failed requests in a row (5xx, dropped, stalled) before an upload ends upload_failed.",
    )

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults < environment < ``overrides`` (CLI flags; ``None`` means not given)."""
        env = os.environ if env is None else env
        values = {}
        for s in SETTINGS:
            raw = s.default
            if s.env in env:
                raw = env[s.env]
            if overrides.get(s.name) is not None:
                raw = overrides[s.name]
            values[s.name] = _parse(s, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError("DRAGON_SQLITE_SYNCHRONOUS must be FULL or NORMAL")
        if self.database_url and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError("DRAGON_DATABASE_URL must start with postgresql://")
        if self.lease_seconds < 3:
            raise ValueError("DRAGON_LEASE_SECONDS must be at least 3")
        if not 0 <= self.tool_nice <= 19:
            raise ValueError("DRAGON_TOOL_NICE must be between 0 and 19")
        if not self.tool_nice <= self.batch_nice <= 19:
            raise ValueError("DRAGON_BATCH_NICE must be between DRAGON_TOOL_NICE and 19")
        if not 1 <= self.s3_presign_seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(
                f"DRAGON_S3_PRESIGN_SECONDS must be 1 to {MAX_PRESIGN_SECONDS} (7 days, the"
                " longest S3 accepts)"
            )
        if self.upload_chunk_bytes < 256 * 1024:
            raise ValueError("DRAGON_UPLOAD_CHUNK_BYTES must be at least 262144 (256 KiB)")
        for name in (
            "port",
            "max_body_bytes",
            "max_tasks_per_request",
            "max_pixels",
            "upload_max_tries",
            "http_idle_timeout_seconds",
            "tool_memory_bytes",
            "fetch_host_connections",
            "upload_hours",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"DRAGON_{name.upper()} must be positive")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def heavy_slots(self) -> int:
        """Slots of the batch lane."""
        return self.concurrency or os.cpu_count() or 1

    @property
    def interactive_slots(self) -> int:
        return self.interactive_concurrency or os.cpu_count() or 1

    # Paths are resolved once: resolve() costs syscalls and tasks ask for tmp_path often.
    @functools.cached_property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @functools.cached_property
    def db_path(self) -> Path:
        return self.data_path / "dragon.db"

    @functools.cached_property
    def files_path(self) -> Path:
        return self.data_path / "files"

    @functools.cached_property
    def tmp_path(self) -> Path:
        return self.data_path / "tmp"

    @functools.cached_property
    def node(self) -> str:
        """This node's name: ``node_name``, else host name and pid."""
        return self.node_name or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, _TYPES[str(f.type)], f.metadata["help"])
    for f in dataclasses.fields(Settings)
)


def render_docs() -> str:
    """docs/settings.md: ``python -m dragon.config > docs/settings.md`` (a test checks it)."""
    lines = [
        "# Settings",
        "",
        "Generated from `dragon/config.py` by `python -m dragon.config` (do not edit by hand).",
        "Every setting has a default and an environment variable; `serve`'s `--host`, `--port`,",
        "`--data-dir` and `--concurrency` flags win over the environment, which wins over the",
        "defaults. Bad values stop the server at start-up.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for s in SETTINGS:
        default = s.default
        if isinstance(default, bool):
            default = "1" if default else "0"
        lines.append(f"| `{s.env}` | `{default if default != '' else '(empty)'}` | {s.help} |")
    lines += [
        "",
        "Also read: `DRAGON_LOG_LEVEL` (default `INFO`), and for S3 the usual",
        "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_docs(), end="")
