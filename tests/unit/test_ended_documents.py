"""The cache of ended tasks' status documents (dragon.engine.documents.EndedDocuments)."""

from __future__ import annotations

import orjson

from dragon.engine.documents import EndedDocuments, document


def row(key: str, status: str = "success", completed: float | None = 1_700_000_002.5) -> dict:
    ended = status in ("success", "error")
    return {
        "key": key,
        "status": status,
        "progress": 40.0,
        "queued_at": 1_700_000_000.0,
        "started_at": 1_700_000_001.25,
        "completed_at": completed if ended else None,
        "result": orjson.dumps({"output": key}).decode() if status == "success" else None,
        "error": orjson.dumps({"message": "no"}).decode() if status == "error" else None,
        "error_code": "internal_error" if status == "error" else None,
    }


def test_documents_are_those_document_builds_in_both_versions():
    cache = EndedDocuments()
    for status in ("success", "error", "executing", "queued"):
        for version in (1, 2):
            r = row(f"K-{status}", status)
            assert cache.document(r, version) == document(r, version)
            assert cache.document(r, version) == document(r, version)  # from the cache


def test_each_answer_is_a_copy_the_caller_may_change():
    cache = EndedDocuments()
    first = cache.document(row("K"))
    first["progress"] = 7
    first["callbacks"] = []
    assert cache.document(row("K")) == document(row("K"))


def test_a_row_that_ended_again_is_built_again():
    cache = EndedDocuments()
    cache.document(row("K", completed=1.0))
    again = cache.document(row("K", completed=2.0))
    assert again["events"]["completed"] == document(row("K", completed=2.0))["events"]["completed"]


def test_the_cache_is_bounded_and_forgets_the_oldest():
    cache = EndedDocuments(size=3)
    for i in range(5):
        cache.document(row(f"K{i}"))
    assert list(cache._docs) == ["K2", "K3", "K4"]


def test_a_poll_is_answered_from_the_cache_only_while_nothing_ended_has_changed():
    cache = EndedDocuments()
    for key in ("A", "B"):
        cache.document(row(key))
    # Built from whole rows, not yet confirmed by a read under a known count.
    assert cache.unchanged(["A", "B"], 1, 0) is None
    for key in ("A", "B"):
        assert cache.confirm(key, 1_700_000_002.5, 1, 0) == document(row(key))
    assert cache.unchanged(["A", "B"], 1, 0) == {k: document(row(k)) for k in ("A", "B")}
    assert cache.unchanged(["A", "B"], 1, 1) is None  # something was deleted or ended again
    assert cache.unchanged(["A", "B"], 2, 0) is None  # another account's poll
    assert cache.unchanged(["A", "C"], 1, 0) is None  # C is not cached


def test_a_read_that_finds_another_end_confirms_nothing():
    cache = EndedDocuments()
    cache.document(row("A", completed=1.0))
    assert cache.confirm("A", 2.0, 1, 0) is None
    assert cache.unchanged(["A"], 1, 0) is None


def test_unchanged_answers_are_copies_in_the_version_asked():
    cache = EndedDocuments()
    r = row("E", "error")
    cache.document(r)
    cache.confirm("E", r["completed_at"], 1, 0)
    v1 = cache.unchanged(["E"], 1, 0, version=1)
    assert v1 == {"E": document(r, 1)}
    v1["E"]["progress"] = 7
    assert cache.unchanged(["E"], 1, 0) == {"E": document(r)}


def test_the_cache_is_bounded_in_bytes_and_keeps_no_huge_document():
    cache = EndedDocuments(max_bytes=16_000)
    big = {**row("BIG"), "result": orjson.dumps({"output": "x" * 2_000}).decode()}
    assert cache.document(big) == document(big)
    assert "BIG" not in cache and cache.bytes == 0  # over a sixteenth of the bound
    for i in range(100):
        cache.document({**row(f"K{i}"), "result": orjson.dumps({"o": "y" * 900}).decode()})
    assert cache.bytes <= 16_000
    assert "K99" in cache and "K0" not in cache  # the oldest went first
