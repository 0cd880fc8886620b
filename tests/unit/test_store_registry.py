"""Store types come from a registry (built-ins, ``DRAGON_STORE_MODULES``, the ``dragon.stores``
entry points), and each store's policy (``listed``, ``counted``) travels with its files: a
store added by one plugin module is listed, counted in usage and subtracted when deleted."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from dragon.config import Settings
from dragon.database.sqlite import SQLiteDatabase
from dragon.runtime import plugins
from dragon.runtime.plugins import AlreadyRegistered
from dragon.stores import Stores, store_types
from dragon.stores.backends import LocalBackend

PLUGIN = "tests.plugins.archive_store"
BUILT_IN = ["persistent", "volatile", "s3_signed", "youtube"]


def test_built_ins_come_first_then_the_modules_named_in_settings():
    assert list(store_types()) == BUILT_IN
    assert list(store_types([PLUGIN])) == [*BUILT_IN, "archive"]
    settings = Settings.load(env={"DRAGON_STORE_MODULES": f" {PLUGIN} ,"})
    assert plugins.dotted_names(settings.store_modules) == (PLUGIN,)


def test_two_modules_declaring_one_type_are_refused():
    with pytest.raises(AlreadyRegistered, match="archive"):
        store_types([PLUGIN, PLUGIN])


def test_entry_points_of_the_group_are_loaded(monkeypatch):
    entry = metadata.EntryPoint(name="archive", value=PLUGIN, group="dragon.stores")
    monkeypatch.setattr(
        plugins.metadata,
        "entry_points",
        lambda group: [entry] if group == "dragon.stores" else [],
    )
    assert list(store_types())[-1] == "archive"


def test_an_unknown_type_names_the_plugin_among_the_choices(tmp_path):
    stores = Stores(
        SQLiteDatabase(tmp_path / "x.db"),
        LocalBackend(tmp_path, "http://x"),
        Settings.load(env={}),
        None,
        PLUGIN,
    )
    assert stores.problems({"type": "archive"}) == []
    (problem,) = stores.problems({"type": "tape"})
    assert problem.endswith("persistent, volatile, s3_signed, youtube, archive")


@pytest.fixture
async def database(tmp_path: Path):
    db = SQLiteDatabase(tmp_path / "stores.db")
    db.open()
    yield db
    db.close()


async def test_a_plugin_store_is_listed_counted_and_subtracted(database, tmp_path):
    account = await database.insert_account("a", b"h", "k", "w", [], 0)
    stores = Stores(
        database,
        LocalBackend(tmp_path / "files", "http://files"),
        Settings.load(env={"DRAGON_DATA_DIR": str(tmp_path)}),
        None,
        PLUGIN,
    )
    source = tmp_path / "source"
    source.write_bytes(b"a" * 40)
    ctx = SimpleNamespace(key="K1", task_name="test.file", account_id=account, warn=print)
    archived = await stores.for_task({"type": "archive"}).put(ctx, "output", source, "text/plain")
    ctx2 = SimpleNamespace(key="K2", task_name="test.file", account_id=account, warn=print)
    await stores.for_task({"type": "volatile"}).put(ctx2, "output", source, "text/plain")

    listed = await database.list_files(account)
    assert [(f["url"], f["store"]) for f in listed] == [(archived, "archive")]
    assert await database.file_directories(account) == ["K1"]
    assert await database.usage(account) == 40  # the volatile file is not counted
    path = tmp_path / "files" / listed[0]["location"]
    assert path.read_bytes() == b"a" * 40

    assert await stores.remove(listed) == 40
    assert await database.usage(account) == 0
    assert await database.list_files(account) == []
    assert not path.exists()


def test_a_store_that_sends_files_away_knows_the_urls_it_gave(tmp_path):
    """What ``/v1/create_file`` trusts of a result URL no record holds (engine/outputs.py):
    only the URL the task's own store answers for that output."""
    stores = Stores(
        SQLiteDatabase(tmp_path / "x.db"), LocalBackend(tmp_path, "http://x"), Settings.load(env={})
    )
    signed = stores.for_task(
        {
            "type": "s3_signed",
            "url": "https://b.example/out.mp4?X-Amz-Signature=s",
            "urls": {"thumbnail": "https://b.example/t.jpg?X-Amz-Signature=t"},
        }
    )
    assert signed.sent("output", "https://b.example/out.mp4")
    assert signed.sent("export", "https://b.example/out.mp4")  # video.create's main output
    assert signed.sent("thumbnail", "https://b.example/t.jpg")
    assert not signed.sent("preview", "https://b.example/out.mp4")  # went to persistent
    assert not signed.sent("output", "https://elsewhere.example/out.mp4")
    assert not signed.sent("output", "https://b.example/out.mp4?X-Amz-Signature=s")
    youtube = stores.for_task({"type": "youtube", "access_token": "t", "developer_key": "k"})
    assert youtube.sent("output", "https://www.youtube.com/watch?v=abc")
    assert not youtube.sent("thumbnail", "https://www.youtube.com/watch?v=abc")
    assert not youtube.sent("output", "https://www.youtube.com.example/watch?v=abc")
    assert not stores.for_task(None).sent("output", "https://b.example/out.mp4")
