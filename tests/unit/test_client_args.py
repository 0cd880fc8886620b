"""Where ``dragon run|status|download`` find their server and secret, and retry timing."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from dragon.client import wire
from dragon.client.commands import DEFAULT_URL, UsageError, connection


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("DRAGON_URL", "DRAGON_SECRET", "DRAGON_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "default-account.json").write_text(json.dumps({"secret": "LOCAL"}))
    return tmp_path


def test_options_win_over_the_environment(here, monkeypatch):
    monkeypatch.setenv("DRAGON_URL", "http://env.test")
    monkeypatch.setenv("DRAGON_SECRET", "ENV")
    assert connection("http://opt.test", "OPT") == ("http://opt.test", "OPT")
    assert connection(None, None) == ("http://env.test", "ENV")


def test_with_neither_the_make_run_account_on_the_local_default(here):
    assert connection(None, None) == (DEFAULT_URL, "LOCAL")


def test_the_data_dir_of_make_run_is_followed(here, monkeypatch):
    (here / "elsewhere").mkdir()
    (here / "elsewhere" / "default-account.json").write_text(json.dumps({"secret": "ELSE"}))
    monkeypatch.setenv("DRAGON_DATA_DIR", str(here / "elsewhere"))
    assert connection(None, None) == (DEFAULT_URL, "ELSE")


def test_a_named_server_never_gets_the_local_secret(here, monkeypatch):
    with pytest.raises(UsageError, match="no credentials"):
        connection("http://remote.test", None)
    monkeypatch.setenv("DRAGON_URL", "http://remote.test")
    with pytest.raises(UsageError, match="no credentials"):
        connection(None, None)


def test_no_account_file_is_a_usage_error(here):
    (here / "var" / "default-account.json").unlink()
    with pytest.raises(UsageError, match="DRAGON_SECRET"):
        connection(None, None)


def test_retry_after_seconds_and_dates():
    def answer(value):
        return httpx.Response(503, headers={"Retry-After": value})

    assert wire.retry_after(answer("3")) == 3
    assert wire.retry_after(answer("Wed, 21 Oct 2015 07:28:00 GMT")) == 0  # in the past
    assert wire.retry_after(answer("9999")) == wire.RETRY_AFTER_MAX
    assert wire.retry_after(answer("soon")) is None
    assert wire.backoff(0, hinted=3) == 3
    assert 0.25 <= wire.backoff(0) <= 0.5
    assert wire.backoff(20) <= wire.BACKOFF_MAX


def test_only_connect_failures_retry_a_create():
    request = httpx.Request("POST", "http://x.test/v2/create")
    refused = httpx.ConnectError("refused", request=request)
    dropped = httpx.RemoteProtocolError("peer closed", request=request)
    assert wire.retryable_error(refused, safe=False)
    assert not wire.retryable_error(dropped, safe=False)
    assert wire.retryable_error(dropped, safe=True)


def test_the_client_imports_nothing_of_the_server():
    code = (
        "import sys, dragon.client, dragon.client.commands; "
        "print(sorted(m for m in sys.modules if m.startswith('dragon.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout
    assert "dragon.client.sync" in loaded
    for server_part in ("engine", "backends", "database", "web", "handlers", "tasks", "stores"):
        assert f"'dragon.{server_part}" not in loaded, loaded
