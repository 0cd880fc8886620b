"""Where the SDK and the commands find their server and secret: one set of rules for both.

The server URL: the one given (``Client(url)``, ``--server``), else ``DRAGON_URL``, else the
config file that ``dragon login`` writes, else ``http://127.0.0.1:8080``.

The secret: the one given (``secret=``, ``--secret``), else ``DRAGON_SECRET``, else the config
file's (only for the config file's server: a secret goes to the server it was checked
against, never to another one), else, when no server was named anywhere, the account that
``dragon serve`` (``make run``) creates on first start in ``./var/default-account.json``
(``$DRAGON_DATA_DIR`` when set): next to ``make run``, no setup at all.

The config file is ``$DRAGON_CONFIG`` when set, else ``client.json`` in the user's config
folder: ``$XDG_CONFIG_HOME/dragon`` (``~/.config/dragon``), ``%APPDATA%\\dragon`` on Windows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080"
# Written by ``dragon serve`` (``make run``) in its data dir.
DEFAULT_ACCOUNT_FILE = "default-account.json"
CONFIG_NAME = "client.json"


class ConfigError(Exception):
    """The config file exists but cannot be read as one (the message names it)."""


@dataclasses.dataclass(frozen=True)
class Connection:
    """A server and the secret to present to it (None: none was found)."""

    url: str
    secret: str | None


def config_path() -> Path:
    """The config file: ``$DRAGON_CONFIG``, else ``client.json`` in the user's config folder."""
    explicit = os.environ.get("DRAGON_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "dragon" / CONFIG_NAME


def read_config(path: Path | None = None) -> dict[str, str]:
    """The config file's ``url`` and ``secret`` (those it has); ``{}`` when there is none."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError(f"the config file {path} is not a JSON object: run `dragon login`")
    return {k: v for k, v in data.items() if k in ("url", "secret") and isinstance(v, str) and v}


def save_config(url: str, secret: str, path: Path | None = None) -> Path:
    """Write the config file, readable by this user only, whole or not at all."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps({"url": url, "secret": secret}, indent=2) + "\n"
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".client-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp made it 0600
            f.write(body)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return path


def same_server(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def local_account_secret() -> str | None:
    """The secret of the account ``make run`` made, from its data dir; None without one."""
    path = Path(os.environ.get("DRAGON_DATA_DIR", "var")) / DEFAULT_ACCOUNT_FILE
    try:
        secret = json.loads(path.read_text())["secret"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return secret if isinstance(secret, str) and secret else None


def resolve(
    url: str | None = None, secret: str | None = None, *, look_for_secret: bool = True
) -> Connection:
    """The server and secret to use, by the rules of this module's docstring.

    ``look_for_secret=False`` for a client that presents an api key: the URL alone.
    """
    named = url or os.environ.get("DRAGON_URL") or None
    if not look_for_secret:
        return Connection((named or read_config().get("url") or DEFAULT_URL).rstrip("/"), secret)
    secret = secret or os.environ.get("DRAGON_SECRET") or None
    if named and secret:  # nothing to read
        return Connection(named.rstrip("/"), secret)
    saved = read_config()
    chosen = named or saved.get("url") or DEFAULT_URL
    return Connection(chosen.rstrip("/"), secret or _secret_of(chosen, named, saved))


def _secret_of(chosen: str, named: str | None, saved: dict[str, str]) -> str | None:
    """The saved secret, for the server it was checked on; the ``make run`` account's when
    no server was named anywhere."""
    if saved.get("secret") and same_server(chosen, saved.get("url", DEFAULT_URL)):
        return saved["secret"]
    if not named and not saved.get("url"):
        return local_account_secret()
    return None
