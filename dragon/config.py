"""Every setting, declared once: name, default, type and help.

Values come from CLI flags, then ``DRAGON_<NAME>`` environment variables, then the defaults
below. ``Settings.load`` validates them at start-up so a typo fails fast instead of at the
first task. ``tests/test_docs.py`` checks that docs/settings.md lists each one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

GiB = 1024**3
MiB = 1024**2


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str

    @property
    def env(self) -> str:
        return "DRAGON_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", str, "Address the API listens on."),
    Setting("port", 8080, int, "Port the API listens on."),
    Setting("data_dir", "./var", str, "Folder for the database, local storage and temp files."),
    Setting("public_url", "", str, "Base URL of output files; default: the server's own address."),
    Setting("concurrency", 0, int, "Heavy tasks run at once; 0 means the number of cores."),
    Setting("light_concurrency", 64, int, "Light tasks (hello, *.info) run at once."),
    Setting("tool_nice", 10, int,
            "Niceness (0-19) of tools and pool workers: below the API, which stays responsive."),
    Setting("task_modules", "", str, "Extra task modules (plugins) to load, comma-separated."),
    Setting("max_attempts", 3, int, "Boots a task may be started on before it ends interrupted."),
    Setting("shutdown_grace_seconds", 30.0, float, "How long running tasks may finish on SIGTERM."),
    Setting("task_timeout_seconds", 3600.0, float, "Longest a task may run."),
    Setting("sqlite_synchronous", "FULL", str, "SQLite synchronous pragma: FULL or NORMAL."),
    Setting("max_body_bytes", 10 * MiB, int, "Largest request body (413 above)."),
    Setting("max_tasks_per_request", 1000, int, "Most tasks in one create (400 above)."),
    Setting("max_queued_tasks", 100_000, int, "Queued tasks before creates get 503."),
    Setting("create_rate", 200.0, float, "Creates per second per credential (429 above)."),
    Setting("create_burst", 400.0, float, "Burst of creates per credential before 429."),
    Setting("stream_queue_size", 256, int,
            "Statuses a stream may lag behind before it re-reads them from the database."),
    Setting("stream_write_timeout_seconds", 60.0, float,
            "A stream whose reader stops reading this long is closed."),
    Setting("allow_private_urls", False, bool, "Fetch loopback/private addresses (dev, tests)."),
    Setting("max_download_bytes", 1 * GiB, int, "Largest source download, after decompression."),
    Setting("max_task_download_bytes", 4 * GiB, int,
            "Most bytes all the sources of one task may add up to."),
    Setting("fetch_connect_timeout", 10.0, float, "Seconds to connect to a source."),
    Setting("fetch_read_timeout", 30.0, float, "Seconds a source may stay silent."),
    Setting("fetch_total_timeout", 600.0, float, "Seconds a whole download may take."),
    Setting("max_redirects", 5, int, "Redirect hops followed per download."),
    Setting("max_pixels", 100_000_000, int, "Largest image or video frame, in pixels."),
    Setting("max_media_duration", 4 * 3600.0, float, "Longest audio or video source, in seconds."),
    Setting("max_media_streams", 32, int, "Most streams in a media source."),
    Setting("max_output_bytes", 4 * GiB, int, "Largest file a tool may write (ffmpeg -fs)."),
    Setting("x264_preset", "veryfast", str, "x264 preset of video encodes (speed vs size)."),
    Setting("reverse_segment_bytes", 400 * MiB, int,
            "Decoded frames video.reverse holds at once (memory bound)."),
    Setting("video_create_memory_bytes", 384 * MiB, int,
            "Input memory one video.create ffmpeg run may use (longer movies render in parts)."),
    Setting("max_video_duration", 600.0, float, "Longest video.create output, in seconds."),
    Setting("volatile_days", 7, int, "Days files in the volatile store are kept."),
    Setting("sweep_interval_seconds", 3600.0, float, "How often expired files are deleted."),
    Setting("webhook_timeout_seconds", 10.0, float, "Seconds a callback receiver may take."),
    Setting("webhook_max_attempts", 5, int, "Callback deliveries tried before giving up."),
    Setting("webhook_first_delay_seconds", 10.0, float, "Delay before the first callback retry."),
    Setting("s3_bucket", "", str, "Store persistent/volatile files in this S3 bucket."),
    Setting("s3_endpoint_url", "", str, "S3-compatible endpoint (MinIO, moto, ...)."),
    Setting("s3_public_url", "", str, "Base URL (CDN) for S3 objects."),
    Setting("s3_region", "us-east-1", str, "S3 region."),
    Setting("youtube_api_url", "https://www.googleapis.com", str,
            "YouTube Data API base URL (video.upload.youtube, youtube store); path kept."),
    Setting("vimeo_api_url", "https://api.vimeo.com", str,
            "Vimeo API base URL (video.upload.vimeo); path kept."),
    Setting("facebook_graph_url", "https://graph-video.facebook.com", str,
            "Facebook Graph API base URL for video uploads (video.upload.fb); path kept."),
    Setting("facebook_graph_version", "v23.0", str, "Graph API version of video.upload.fb."),
    Setting("upload_chunk_bytes", 16 * MiB, int,
            "Bytes per upload request to YouTube and Vimeo (YouTube: a multiple of 256 KiB)."),
    Setting("upload_max_tries", 8, int,
            "Tries of an upload step that fails without progress before upload_failed."),
)


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
        raise ValueError(
            f"{setting.env}: expected {setting.type.__name__}, got {raw!r}"
        ) from None


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    data_dir: str
    public_url: str
    concurrency: int
    light_concurrency: int
    tool_nice: int
    task_modules: str
    max_attempts: int
    shutdown_grace_seconds: float
    task_timeout_seconds: float
    sqlite_synchronous: str
    max_body_bytes: int
    max_tasks_per_request: int
    max_queued_tasks: int
    create_rate: float
    create_burst: float
    stream_queue_size: int
    stream_write_timeout_seconds: float
    allow_private_urls: bool
    max_download_bytes: int
    max_task_download_bytes: int
    fetch_connect_timeout: float
    fetch_read_timeout: float
    fetch_total_timeout: float
    max_redirects: int
    max_pixels: int
    max_media_duration: float
    max_media_streams: int
    max_output_bytes: int
    x264_preset: str
    reverse_segment_bytes: int
    video_create_memory_bytes: int
    max_video_duration: float
    volatile_days: int
    sweep_interval_seconds: float
    webhook_timeout_seconds: float
    webhook_max_attempts: int
    webhook_first_delay_seconds: float
    s3_bucket: str
    s3_endpoint_url: str
    s3_public_url: str
    s3_region: str
    youtube_api_url: str
    vimeo_api_url: str
    facebook_graph_url: str
    facebook_graph_version: str
    upload_chunk_bytes: int
    upload_max_tries: int

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
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
        if not 0 <= self.tool_nice <= 19:
            raise ValueError("DRAGON_TOOL_NICE must be between 0 and 19")
        if self.upload_chunk_bytes < 256 * 1024:
            raise ValueError("DRAGON_UPLOAD_CHUNK_BYTES must be at least 262144 (256 KiB)")
        for name in ("port", "max_body_bytes", "max_tasks_per_request", "max_pixels",
                     "upload_max_tries"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DRAGON_{name.upper()} must be positive")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def heavy_slots(self) -> int:
        return self.concurrency or os.cpu_count() or 1

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

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def render_docs() -> str:
    """docs/settings.md: ``python -m dragon.config > docs/settings.md`` (a test checks it)."""
    lines = [
        "# Settings", "",
        "Generated from `dragon/config.py` by `python -m dragon.config` (do not edit by hand).",
        "Every setting has a default and an environment variable; `serve`'s `--host`, `--port`,",
        "`--data-dir` and `--concurrency` flags win over the environment, which wins over the",
        "defaults. Bad values stop the server at start-up.", "",
        "| variable | default | meaning |", "|---|---|---|",
    ]
    for s in SETTINGS:
        default = s.default
        if isinstance(default, bool):
            default = "1" if default else "0"
        lines.append(f"| `{s.env}` | `{default if default != '' else '(empty)'}` | {s.help} |")
    lines += ["", "Also read: `DRAGON_LOG_LEVEL` (default `INFO`), and for S3 the usual",
              "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_docs(), end="")
