"""Classes of work and an honest queue: what a user reads while tasks wait.

Three lanes: ``light`` (hello, probes), ``interactive`` (image.*, video.thumb, video.strip,
audio analyses, html.*) and ``batch`` (video.convert, video.create, video.reverse,
video.upload.*, or any task created with ``"batch": true``), with ``DRAGON_CONCURRENCY``
slots for batch work and ``DRAGON_INTERACTIVE_CONCURRENCY`` for interactive work. A task of
the interactive or batch lane is ``queued`` until its tool starts (while its source
downloads too, with ``"stage": "downloading"``), with a ``queue_position`` that is true
and an ``eta``; ``events.started`` is when its work began. ``/metrics`` and ``/healthz``
count what the documents say.

Everything here is decided from the documents' own order (who started before whom, which
positions were reported), never from how long something took: real ffmpeg runs on a
shared box take what they take.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_slow_sources import Trickle
from tests.support.media import video
from tests.support.server import dragon

LANES = {"light", "interactive", "batch"}
POLL = 0.1  # seconds between polls
WAIT = 240  # seconds before a test gives up waiting for real ffmpeg runs


class Paced:
    """An origin that sends each file in ten parts over ``seconds``: a download takes a
    while, as from a real remote origin, so tasks can be seen downloading."""

    def __init__(self, seconds: float = 0.5) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                data = files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                part = len(data) // 10 + 1
                try:
                    for start in range(0, len(data), part):
                        time.sleep(seconds / 10)
                        self.wfile.write(data[start : start + part])
                        self.wfile.flush()
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, name: str, path: Path) -> str:
        self.files["/" + name] = path.read_bytes()
        return f"{self.url}/{name}"


@dataclass(frozen=True)
class Clips:
    long: str  # a 720p clip: a video.convert of it takes a few seconds
    longer: str  # twice as long: a convert of it clearly outlasts a download
    short: str  # a small clip: a video.convert of it takes about a second


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Clips:
    """The clips, each downloaded in about half a second."""
    folder: Path = tmp_path_factory.mktemp("scheduling-clips")
    origin = Paced()
    yield Clips(
        long=origin.add("long.mp4", video(folder / "long.mp4", duration=5, size="1280x720")),
        longer=origin.add("longer.mp4", video(folder / "longer.mp4", duration=10, size="1280x720")),
        short=origin.add("short.mp4", video(folder / "short.mp4", duration=2, size="320x240")),
    )
    origin.httpd.shutdown()


def slots(batch: int, **more: str) -> dict:
    """Server settings with ``batch`` slots in the batch lane (``DRAGON_CONCURRENCY``)."""
    return {"DRAGON_CONCURRENCY": str(batch), **more}


def convert(url: str) -> dict:
    return {"task_name": "video.convert", "url": url}


def create(server, account: dict, tasks: list[dict]) -> list[str]:
    """Create ``tasks`` (not blocking) as ``account``; their keys."""
    r = server.request(
        "POST",
        "/v2/create",
        {"tasks": tasks},
        headers={"Authorization": f"Secret {account['secret']}"},
    )
    assert r.status == 200, r.body
    docs = r.json()
    assert all(d["status"] != "error" for d in docs), docs
    return [d["key"] for d in docs]


def statuses(server, account: dict, keys: list[str]) -> dict[str, dict]:
    """The status documents of ``keys`` from one request, by key, in the order of ``keys``."""
    r = server.request(
        "GET",
        "/v2/status?tasks=" + ",".join(keys),
        headers={"Authorization": f"Secret {account['secret']}"},
    )
    assert r.status == 200, r.body
    docs = {d["key"]: d for d in r.json()}
    return {key: docs[key] for key in keys}


def when(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def started(doc: dict) -> float | None:
    value = doc["events"].get("started")
    return None if value is None else when(value)


def ended(doc: dict) -> bool:
    return doc["status"] in ("success", "error")


def end_of(server, account: dict, key: str) -> dict | None:
    """The document of ``key`` if it has ended, else None."""
    doc = statuses(server, account, [key])[key]
    return doc if ended(doc) else None


def wait_until(condition, what: str, timeout: float = WAIT):
    """Poll ``condition`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL)
    raise AssertionError(f"gave up waiting: {what}")


def check_document(doc: dict) -> None:
    """What every document says of itself: a waiting task is queued, has a position and
    an eta field and no start; a running one has a start and no position."""
    assert doc["status"] != "error", doc
    if doc["status"] == "queued":
        assert "started" not in doc["events"], doc
        assert doc["progress"] == 0, doc
        assert isinstance(doc.get("queue_position"), int), doc
        assert doc["queue_position"] >= 1, doc
        assert "eta" in doc, doc
    else:
        assert "started" in doc["events"], doc
        assert "queue_position" not in doc and "eta" not in doc, doc


def waiting(docs: dict[str, dict]) -> dict[str, int]:
    """``{key: queue_position}`` of the queued documents, in the order of ``docs``."""
    return {key: d["queue_position"] for key, d in docs.items() if d["status"] == "queued"}


def scrape(server) -> dict[str, dict[str, float]]:
    """``{metric sample name: {lane: value}}`` of the per-lane gauges of ``/metrics``."""
    r = server.request("GET", "/metrics", auth=False)
    assert r.status == 200
    lanes: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(r.body.decode()):
        for sample in family.samples:
            if "lane" in sample.labels:
                lanes.setdefault(sample.name, {})[sample.labels["lane"]] = sample.value
    return lanes


def health(server) -> dict:
    r = server.request("GET", "/healthz", auth=False)
    assert r.status == 200, r.body
    return r.json()


# -- one batch slot, four converts ----------------------------------------------------------


@pytest.mark.timeout(WAIT + 60)
def test_one_batch_slot_four_converts_three_queued_with_true_positions(make_server, clips):
    server = make_server(env=slots(1))
    me = server.account
    # One convert first: video.convert then has a run time, so a queued one has an eta.
    assert server.run_task(convert(clips.short))["status"] == "success"
    keys = create(server, me, [convert(clips.long)] * 4)

    polls = []
    deadline = time.monotonic() + WAIT
    while True:
        docs = statuses(server, me, keys)
        polls.append(docs)
        for doc in docs.values():
            check_document(doc)
        executing = [k for k, d in docs.items() if d["status"] == "executing"]
        queue = waiting(docs)
        # One slot: never two at once. (Between one convert's end and the next one's start
        # a poll may see none executing: ending one and starting the next are two commits.)
        assert len(executing) <= 1, docs
        # The waiting ones are the last created, at positions 1..k in the order of creation.
        assert list(queue) == keys[len(keys) - len(queue) :], docs
        assert list(queue.values()) == list(range(1, len(queue) + 1)), docs
        assert all(isinstance(docs[k]["eta"], str) for k in queue), docs
        etas = [when(docs[k]["eta"]) for k in queue]
        assert etas == sorted(etas), docs
        if all(ended(d) for d in docs.values()):
            break
        assert time.monotonic() < deadline, "the converts did not end"
        time.sleep(POLL)

    assert all(d["status"] == "success" for d in docs.values()), docs
    # The picture: one executing, three queued at positions 1, 2 and 3.
    assert any(
        list(waiting(p).values()) == [1, 2, 3]
        and [d["status"] for d in p.values()].count("executing") == 1
        for p in polls
    ), "no poll saw one convert executing and three queued"
    # Each started in the order of its position, and ran alone.
    order = sorted(keys, key=lambda k: started(docs[k]))
    assert order == keys
    for before, after in zip(keys, keys[1:], strict=False):
        assert when(docs[before]["events"]["completed"]) <= started(docs[after])


# -- fairness inside the batch lane ---------------------------------------------------------


def stable(before: dict[str, dict], after: dict[str, dict]) -> bool:
    """Nothing of ``before`` changed by ``after`` (statuses and positions)."""
    return all(
        (before[k]["status"], before[k].get("queue_position"))
        == (after[k]["status"], after[k].get("queue_position"))
        for k in before
    )


def lane_queue(flood: dict[str, dict], position: int) -> dict[str, int]:
    """The flood's waiting converts, by key, from a poll where the other account's
    thumbnail said ``position``: together they are the batch lane's queue, 1..k."""
    queue = waiting(flood)
    assert list(queue.values()) == sorted(queue.values()), flood  # one account: in order
    everyone = sorted([*queue.values(), position])
    assert everyone == list(range(1, len(everyone) + 1)), (queue, position)
    return queue


def poll_until_ended(server, flood: tuple[dict, list[str]], single: tuple[dict, str]):
    """Poll the flood's documents, then the single task's, then the flood's again, until
    the single task has ended. When the flood's documents did not change in between, the
    single task's position was read in the same state of the lane as theirs: such polls
    are kept while it was queued with its input in, as ``(the flood's waiting keys and
    positions, its position)``. Returns them, its last document, and the flood's keys that
    were executing at the first poll that saw its input in."""
    (a, keys), (b, key) = flood, single
    snapshots: list[tuple[dict[str, int], int]] = []
    ready_during: set[str] | None = None
    deadline = time.monotonic() + WAIT
    while True:
        before = statuses(server, a, keys)
        mine = statuses(server, b, [key])[key]
        after = statuses(server, a, keys)
        for doc in [*before.values(), mine]:
            check_document(doc)
        if ended(mine):
            return snapshots, mine, ready_during or set()
        if mine["status"] == "queued" and mine.get("stage") != "downloading":
            if ready_during is None:
                ready_during = {k for k, d in before.items() if d["status"] == "executing"}
            # It waits behind at most the convert the flood started (granted its slot, about
            # to begin) while B's input was still coming, never further back.
            assert mine["queue_position"] in (1, 2), mine
            if stable(before, after):
                position = mine["queue_position"]
                snapshots.append((lane_queue(after, position), position))
        assert time.monotonic() < deadline, "the single task did not end"
        time.sleep(POLL)


@pytest.mark.timeout(WAIT + 60)
def test_a_flood_of_converts_delays_another_accounts_batch_thumb_by_one_convert(make_server, clips):
    server = make_server(env=slots(1))
    a = server.create_account("flood-a")
    b = server.create_account("flood-b")
    # Converts that outlast B's download, as a real flood's would.
    flood_keys = create(server, a, [convert(clips.longer)] * 30)
    # The flood is under way before B asks: its second convert has started (under the old
    # scheduler, by then every task of the flood had downloaded and come back to the front).
    wait_until(
        lambda: started(statuses(server, a, flood_keys[1:2])[flood_keys[1]]) is not None,
        "the flood's second convert to start",
    )
    [thumb] = create(
        server, b, [{"task_name": "video.thumb", "url": clips.short, "width": 160, "batch": True}]
    )

    snapshots, mine, ready_during = poll_until_ended(server, (a, flood_keys), (b, thumb))
    assert mine["status"] == "success", mine
    final = statuses(server, a, flood_keys)
    asked, b_started = when(mine["events"]["queued"]), started(mine)
    assert b_started is not None
    # One slot: B waited for the convert running when it asked (the flood's second), and no
    # other. It downloaded its input at once, without waiting for a slot, so its input was
    # in while that convert ran (a convert of this clip outlasts the download)...
    assert flood_keys[1] in ready_during, (ready_during, final[flood_keys[1]]["events"])
    # ...and its account's turn came before the flood's next.
    ahead = [k for k, d in final.items() if (s := started(d)) and asked < s < b_started]
    assert ahead == [], [final[k]["events"] for k in ahead]
    # (No snapshot: B started as soon as its input was in; nothing stood ahead of it.)
    # What was ahead of B in a snapshot started before it. (The reverse, that nothing
    # behind it went first, does not always hold: when the flood's next task and B come
    # back from their downloads at about the same moment, either may take the slot, so a
    # position can be one off; the bound on what went ahead is the check above.)
    for queue, position in snapshots:
        for key, theirs in queue.items():
            start = started(final[key])
            if theirs < position:
                assert start is not None and start < b_started, (position, theirs, final[key])
    server.stop()  # the rest of the flood need not run


# -- interactive work does not wait for batch work -------------------------------------------


@pytest.mark.timeout(WAIT + 60)
def test_an_interactive_thumb_starts_while_the_batch_lane_is_full(make_server, clips):
    server = make_server(env=slots(1))
    me = server.account
    converts = create(server, me, [convert(clips.long)] * 3)
    wait_until(
        lambda: statuses(server, me, converts[:1])[converts[0]]["status"] == "executing",
        "the first convert to start",
    )
    [thumb] = create(server, me, [{"task_name": "video.thumb", "url": clips.short, "width": 160}])

    def thumb_ended():
        docs = statuses(server, me, [*converts, thumb])
        for doc in docs.values():
            check_document(doc)
        return docs if ended(docs[thumb]) else None

    docs = wait_until(thumb_ended, "the thumbnail to end")
    assert docs[thumb]["status"] == "success", docs[thumb]
    thumb_started = started(docs[thumb])
    first, second = docs[converts[0]], docs[converts[1]]
    # The batch lane was full when the thumbnail started: the first convert was running...
    assert started(first) < thumb_started
    assert not ended(first) or when(first["events"]["completed"]) > thumb_started
    # ... and the thumbnail did not wait for it, nor for the backlog behind it.
    assert started(second) is None or started(second) > thumb_started
    server.stop()


# -- /metrics and /healthz count what the documents say ---------------------------------------


def lane_counts(docs: dict[str, dict], lanes: dict[str, str]) -> dict[str, dict[str, int]]:
    """``{"queued"|"executing": {lane: count}}`` from the documents."""
    counts: dict[str, dict[str, int]] = {"queued": {}, "executing": {}}
    for lane in LANES:
        for status in counts:
            counts[status][lane] = sum(
                1 for k, d in docs.items() if lanes[k] == lane and d["status"] == status
            )
    return counts


def quiet_reading(server, me: dict, keys: list[str]):
    """Documents, /metrics and /healthz read while nothing changed (the documents read
    before and after agree), or None."""
    before = statuses(server, me, keys)
    gauges, counts = scrape(server), health(server)
    after = statuses(server, me, keys)
    same = all(
        (before[k]["status"], before[k].get("stage")) == (after[k]["status"], after[k].get("stage"))
        for k in keys
    )
    return (after, gauges, counts) if same else None


@pytest.mark.timeout(WAIT + 60)
def test_metrics_and_healthz_count_what_the_documents_say(make_server, clips):
    server = make_server(
        env=slots(1, DRAGON_INTERACTIVE_CONCURRENCY="1", DRAGON_LIGHT_CONCURRENCY="1")
    )
    me = server.account
    lanes: dict[str, str] = {}
    for lane, task, count in (
        ("batch", convert(clips.long), 3),
        ("interactive", {"task_name": "video.thumb", "url": clips.long, "pick": "best"}, 4),
        ("light", {"task_name": "test.progress", "seconds": 6}, 3),
    ):
        lanes.update(dict.fromkeys(create(server, me, [task] * count), lane))
    keys = list(lanes)

    def busy_and_quiet():
        reading = quiet_reading(server, me, keys)
        if reading is None:
            return None
        docs = reading[0]
        for lane in LANES:  # a lane with one task left can never again be seen full
            left = [d for k, d in docs.items() if lanes[k] == lane and not ended(d)]
            assert len(left) >= 2, f"the {lane} lane drained before a quiet moment: {docs}"
        counts = lane_counts(docs, lanes)
        full = all(counts["queued"][lane] and counts["executing"][lane] for lane in LANES)
        return reading if full else None

    docs, gauges, counts = wait_until(busy_and_quiet, "a quiet moment with every lane busy")
    expected = lane_counts(docs, lanes)
    assert set(gauges["dragon_queue_depth"]) == LANES, gauges
    assert gauges["dragon_queue_depth"] == expected["queued"], (gauges, docs)
    assert gauges["dragon_tasks_running"] == expected["executing"], (gauges, docs)
    assert counts["queued"] == sum(expected["queued"].values()), (counts, docs)
    assert counts["executing"] == sum(expected["executing"].values()), (counts, docs)

    wait_until(lambda: all(ended(d) for d in statuses(server, me, keys).values()), "the end")
    gauges, counts = scrape(server), health(server)
    assert gauges["dragon_queue_depth"] == dict.fromkeys(LANES, 0), gauges
    assert gauges["dragon_tasks_running"] == dict.fromkeys(LANES, 0), gauges
    assert (counts["queued"], counts["executing"]) == (0, 0), counts


# -- a download is not execution ------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_task_downloading_its_source_is_queued_not_executing(make_server):
    server = make_server(env=slots(1))
    me = server.account
    trickle = Trickle()  # a source that never finishes within the test
    try:
        thumb, encode = create(
            server,
            me,
            [{"task_name": "image.thumb", "url": trickle.url, "width": 64}, convert(trickle.url)],
        )
        # Both are dispatched and start their downloads (before that: queued, no stage).
        wait_until(
            lambda: all(
                d.get("stage") == "downloading"
                for d in statuses(server, me, [thumb, encode]).values()
            ),
            "both downloads to begin",
        )
        for _ in range(8):
            docs = statuses(server, me, [thumb, encode])
            for doc in docs.values():
                assert doc["status"] == "queued", doc
                assert doc.get("stage") == "downloading", doc
                check_document(doc)
                assert doc["queue_position"] == 1, doc  # alone in its lane
            gauges, counts = scrape(server), health(server)
            assert gauges["dragon_queue_depth"]["interactive"] == 1, gauges
            assert gauges["dragon_queue_depth"]["batch"] == 1, gauges
            assert (counts["queued"], counts["executing"]) == (2, 0), counts
            time.sleep(0.2)
    finally:
        trickle.close()
        server.stop()


# -- per-account concurrency ----------------------------------------------------------------


@pytest.mark.timeout(WAIT + 60)
def test_max_running_keeps_an_account_to_one_slot(make_server, clips):
    server = make_server(env=slots(2))
    kept = server.create_account("kept")
    out = dragon(
        "accounts",
        "update",
        "kept",
        "--max-running",
        "1",
        "--data-dir",
        str(server.data_dir),
        env=server.env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["max_running"] == 1, out.stdout
    time.sleep(2.5)  # a running server reads the accounts' limits every 2 s
    other = server.create_account("free")
    mine = create(server, kept, [convert(clips.long)] * 2)
    [theirs] = create(server, other, [convert(clips.long)])

    def all_ended():
        docs = {**statuses(server, kept, mine), **statuses(server, other, [theirs])}
        for doc in docs.values():
            check_document(doc)
        running = [k for k in mine if docs[k]["status"] == "executing"]
        assert len(running) <= 1, docs
        return docs if all(ended(d) for d in docs.values()) else None

    docs = wait_until(all_ended, "the three converts to end")
    assert all(d["status"] == "success" for d in docs.values()), docs
    first, second = sorted((docs[k] for k in mine), key=started)
    # The kept account's two converts never ran together...
    assert when(first["events"]["completed"]) <= started(second)
    # ... and its second did not hold back the other account: the free slot went to it.
    assert started(docs[theirs]) < started(second)
