"""Where the SDK and the commands find their server and secret (options, environment, the
config file of ``dragon login``, the ``make run`` account), HTTPie's fields, the names of
downloaded files, and retry timing."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from dragon.client import Client, config, wire
from dragon.client.commands import DEFAULT_URL, UsageError, connection, parse_field
from dragon.client.files import Destination


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("DRAGON_URL", "DRAGON_SECRET", "DRAGON_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRAGON_CONFIG", str(tmp_path / "config" / "client.json"))
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "default-account.json").write_text(json.dumps({"secret": "LOCAL"}))
    return tmp_path


def test_the_config_file_is_read_after_the_environment(here, monkeypatch):
    path = config.save_config("http://saved.test", "SAVED")
    assert path == here / "config" / "client.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert connection(None, None) == ("http://saved.test", "SAVED")
    monkeypatch.setenv("DRAGON_SECRET", "ENV")
    assert connection(None, None) == ("http://saved.test", "ENV")
    monkeypatch.setenv("DRAGON_URL", "http://env.test")
    assert connection(None, None) == ("http://env.test", "ENV")
    assert connection("http://opt.test", "OPT") == ("http://opt.test", "OPT")


def test_the_saved_secret_only_goes_to_the_saved_server(here, monkeypatch):
    config.save_config("http://saved.test/", "SAVED")
    monkeypatch.setenv("DRAGON_URL", "http://saved.test")  # the same server, named again
    assert connection(None, None) == ("http://saved.test", "SAVED")
    monkeypatch.setenv("DRAGON_URL", "http://other.test")
    with pytest.raises(UsageError, match="no credentials for http://other.test"):
        connection(None, None)
    with pytest.raises(UsageError, match="dragon login"):
        connection("http://third.test", None)


def test_the_sdk_finds_what_the_commands_find(here, monkeypatch):
    with Client() as client:  # next to make run: its account, on the local default
        assert client.url == DEFAULT_URL
        assert client._headers["Authorization"] == "Secret LOCAL"
    config.save_config("http://saved.test", "SAVED")
    with Client() as client:
        assert (client.url, client._headers["Authorization"]) == (
            "http://saved.test",
            "Secret SAVED",
        )
    monkeypatch.setenv("DRAGON_URL", "http://env.test/")
    monkeypatch.setenv("DRAGON_SECRET", "ENV")
    with Client() as client:
        assert (client.url, client._headers["Authorization"]) == ("http://env.test", "Secret ENV")
    with Client("http://given.test", api_key="KEY", referrer="https://site.test") as client:
        assert client._headers["Authorization"] == "Api-Key KEY"  # no secret added to a key


def test_a_broken_config_file_is_named(here):
    path = here / "config" / "client.json"
    path.parent.mkdir()
    path.write_text("url = 'toml?'")
    with pytest.raises(config.ConfigError, match=str(path)):
        Client()
    with pytest.raises(UsageError, match="dragon login"):
        connection(None, None)


def test_fields_from_files_as_httpie_reads_them(tmp_path):
    (tmp_path / "movie.xml").write_text('<movie service="craftsman-1.0"/>\n')
    (tmp_path / "size.json").write_text('{"width": 200, "crop": true}')
    assert parse_field(f"definition=@{tmp_path / 'movie.xml'}") == (
        "definition",
        '<movie service="craftsman-1.0"/>\n',
    )
    assert parse_field(f"options:=@{tmp_path / 'size.json'}") == (
        "options",
        {"width": 200, "crop": True},
    )
    assert parse_field("name=\\@home") == ("name", "@home")
    assert parse_field("email=a@b.test") == ("email", "a@b.test")
    for item, message in (
        (f"definition=@{tmp_path / 'missing.xml'}", "cannot read"),
        (f"options:=@{tmp_path / 'movie.xml'}", "is not valid JSON"),
        ("name=@", "names no file"),
    ):
        with pytest.raises(UsageError, match=message):
            parse_field(item)
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        parse_field(f"text=@{tmp_path / 'binary'}")


def test_a_downloaded_file_is_named_after_its_output(tmp_path):
    local = "http://127.0.0.1:8080/storage/KEY/dragon-video.create-AbC123"
    mp4 = {"Content-Type": "video/mp4"}
    assert Destination(tmp_path, local, mp4, stem="export").path.name == "export.mp4"
    assert Destination(tmp_path, local, mp4, {"export.mp4"}, "export").path.name == ("export-2.mp4")
    s3 = "https://bucket.test/KEY/stream/index.m3u8?X-Amz-Signature=abc"
    assert Destination(tmp_path, s3, {}, stem="stream").path.name == "stream.m3u8"
    assert Destination(tmp_path, local, mp4, stem="../up").path.name == "___up.mp4"
    assert Destination(tmp_path, local, mp4).path.name == "dragon-video.create-AbC123.mp4"


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
