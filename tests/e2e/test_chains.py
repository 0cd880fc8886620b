"""Task chains in one create (docs/api.md, "Task chains"): a task whose input is another
task's output, by index in the create or by the key of an earlier task.

The source is a generated 320x240 video served by the test origin; the chain converts it
to 80x60 and makes a thumbnail and a strip of the conversion, so the size of what they
made tells which video they read. Outputs are read back and checked with Pillow.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from tusclient import client as tus_client

from dragon import errors
from dragon.client import Client, output_of
from tests.support.media import ffmpeg
from tests.support.postgres import postgres_bin
from tests.support.server import dragon

ENDED = ("success", "error")


@pytest.fixture(scope="module")
def source(tmp_path_factory, origin):
    d = tmp_path_factory.mktemp("chains")
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=320x240:r=10:d=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        str(d / "clip.mp4"),
    )
    return {
        "video": origin.add_file("chains/clip.mp4", d / "clip.mp4"),
        "broken": origin.add("chains/broken.mp4", b"this is not a video at all" * 100),
    }


def chain(url: str, **extra) -> list[dict]:
    """video.convert to 80x60, then a thumbnail and a strip of what it made."""
    return [
        {"task_name": "video.convert", "url": url, "width": 80, "crf": 35, **extra},
        {"task_name": "video.thumb", "url": {"task": 0, "output": "output"}, "time": 1},
        {"task_name": "video.strip", "url": {"task": 0}, "count": 4, "wrap": 4},
    ]


def picture(server, url: str) -> Image.Image:
    r = server.get(url)
    assert r.status == 200, r.status
    return Image.open(io.BytesIO(r.body))


def assert_chain_made(server, docs: list[dict]) -> None:
    """All three succeeded, and the thumbnail and strip are of the 80x60 conversion."""
    assert [d["status"] for d in docs] == ["success"] * 3, docs
    convert, thumb, strip = (d["result"] for d in docs)
    assert (convert["width"], convert["height"]) == (80, 60)
    assert picture(server, thumb["output"]).size == (80, 60)
    assert picture(server, strip["output"]).size == (4 * 80, 60)  # cells never enlarged


def test_a_chain_from_one_blocking_create_ends_with_all_outputs(make_server, source, origin):
    # Output URLs name a host nobody can reach: the thumbnail and strip can only have read
    # the conversion from storage.
    server = make_server(env={"DRAGON_PUBLIC_URL": "http://outputs.invalid"})
    before = origin.hits.count("/chains/clip.mp4")
    r = server.request("POST", "/v2/create", {"tasks": chain(source["video"]), "block": True})
    assert r.status == 200, r.body
    docs = r.json()
    assert [d["status"] for d in docs] == ["success"] * 3, docs
    assert origin.hits.count("/chains/clip.mp4") == before + 1  # the source, once
    invalid = "http://outputs.invalid"
    assert all(d["result"]["output"].startswith(invalid + "/storage/") for d in docs)
    for doc in docs:  # read back from the server, which answers for its storage anyway
        doc["result"]["output"] = doc["result"]["output"].replace(invalid, server.url)
    assert_chain_made(server, docs)


def test_dependants_wait_then_read_the_output(dragon_server, source):
    created = dragon_server.create(chain(source["video"]), block=False)
    first = created[0]["key"]
    for doc in created[1:]:  # answered before anything ran: the inputs have not ended
        assert doc["status"] == "queued" and doc["waiting_for"] == [first]
    keys = [d["key"] for d in created]
    r = dragon_server.request("POST", "/v2/status", {"tasks": keys, "block": True})
    ended = r.json()
    assert "waiting_for" not in ended[1]
    assert_chain_made(dragon_server, ended)
    [details] = dragon_server.request(
        "POST", "/v2/status", {"tasks": [keys[1]], "details": True}
    ).json()
    assert details["parameters"]["url"] == {"task": first, "output": "output"}


def test_a_broken_source_fails_the_dependants(dragon_server, source):
    docs = dragon_server.create(chain(source["broken"]))
    convert, thumb, strip = docs
    assert convert["status"] == "error" and convert["error_code"] != errors.DEPENDENCY_FAILED
    for doc in (thumb, strip):
        assert doc["status"] == "error", doc
        assert doc["error_code"] == errors.DEPENDENCY_FAILED
        assert convert["key"] in doc["error"] and convert["error_code"] in doc["error"]


def test_an_invalid_input_fails_its_dependants_at_create(dragon_server, source):
    docs = dragon_server.create(
        [
            {"task_name": "video.convert", "url": source["video"], "crf": 99},
            {"task_name": "video.thumb", "url": {"task": 0}},
            {"task_name": "video.thumb", "url": {"task": 1}},  # a chain of failures
        ],
        block=False,
    )
    assert docs[0]["error_code"] == errors.PARAMETERS
    assert [d["error_code"] for d in docs[1:]] == [errors.DEPENDENCY_FAILED] * 2
    assert docs[0]["key"] in docs[1]["error"] and docs[1]["key"] in docs[2]["error"]


@pytest.mark.parametrize(
    ("tasks", "words"),
    [
        ([{"task_name": "video.thumb", "url": {"task": 0}}], "itself"),
        ([{"task_name": "video.thumb", "url": {"task": 1}}, {"task_name": "hello"}], "tasks[1]"),
        ([{"task_name": "hello"}, {"task_name": "video.thumb", "url": {"task": -1}}], "tasks[-1]"),
        ([{"task_name": "hello"}, {"task_name": "video.thumb", "url": {"task": 5}}], "tasks[5]"),
        ([{"task_name": "hello"}, {"task_name": "video.thumb", "url": {"task": True}}], "index"),
        (
            [{"task_name": "hello"}, {"task_name": "video.thumb", "url": {"task": 0, "output": 3}}],
            "output",
        ),
        ([{"task_name": "video.thumb", "url": {"task": "NOSUCHKEY"}}], "NOSUCHKEY"),
        (  # a cycle: each refers to the other, so one of them refers forwards
            [
                {"task_name": "video.thumb", "url": {"task": 1}},
                {"task_name": "video.thumb", "url": {"task": 0}},
            ],
            "tasks[1]",
        ),
    ],
)
def test_forward_references_cycles_and_unknown_keys_are_400(dragon_server, tasks, words):
    r = dragon_server.request("POST", "/v2/create", {"tasks": tasks})
    assert r.status == 400, r.body
    body = r.json()
    assert body["status"] == "error"
    [error] = body["errors"]
    assert (error["name"], error["location"]) == ("tasks", "body")
    assert words in error["description"]


def test_another_accounts_task_is_unknown(make_server, dragon_server, source):
    [hello] = dragon_server.create([{"task_name": "test.file"}])
    other = make_server()
    r = other.request(
        "POST",
        "/v2/create",
        {"tasks": [{"task_name": "test.fetch", "url": {"task": hello["key"]}}]},
    )
    assert r.status == 400 and hello["key"] in r.json()["errors"][0]["description"]


def test_a_reference_by_key_to_an_earlier_task(dragon_server, source):
    # Still running when the dependant is created: it waits for it.
    [convert] = dragon_server.create(chain(source["video"])[:1], block=False)
    thumb = {"task_name": "video.thumb", "url": {"task": convert["key"]}, "time": 1}
    [doc] = dragon_server.create([thumb])
    assert doc["status"] == "success", doc
    assert picture(dragon_server, doc["result"]["output"]).size == (80, 60)
    # Ended already: it runs at once.
    [again] = dragon_server.create([thumb], block=False)
    assert "waiting_for" not in again
    [again] = dragon_server.request(
        "POST", "/v2/status", {"tasks": [again["key"]], "block": True}
    ).json()
    assert again["status"] == "success", again


def test_any_output_field_and_the_missing_one(dragon_server):
    docs = dragon_server.create(
        [
            {"task_name": "test.file", "text": "first", "names": ["output", "other"]},
            {"task_name": "test.fetch", "url": {"task": 0, "output": "other"}},
            {"task_name": "test.fetch", "url": {"task": 0, "output": "length"}},
        ]
    )
    assert docs[1]["status"] == "success" and docs[1]["result"]["size"] == len("first")
    assert docs[2]["error_code"] == errors.DEPENDENCY_FAILED
    assert "'length'" in docs[2]["error"]


def test_cancelling_an_input_fails_its_dependants(dragon_server):
    producer, dependant = dragon_server.create(
        [
            {"task_name": "test.progress", "seconds": 30},
            {"task_name": "test.fetch", "url": {"task": 0}},
        ],
        block=False,
    )
    r = dragon_server.request("POST", "/v2/cancel", {"tasks": [producer["key"]]})
    assert r.json()[0]["error_code"] == errors.CANCELLED
    [doc] = dragon_server.request(
        "POST", "/v2/status", {"tasks": [dependant["key"]], "block": True}
    ).json()
    assert doc["error_code"] == errors.DEPENDENCY_FAILED and errors.CANCELLED in doc["error"]


class Receiver:
    """Records the callbacks it is sent."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append({"path": self.path, "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.calls


def test_streams_callbacks_and_the_event_feed_follow_a_chain(make_server, source):
    server = make_server(env={"DRAGON_WEBHOOK_FIRST_DELAY_SECONDS": "0.1"})
    receiver = Receiver()
    tasks = chain(source["broken"])
    tasks[1]["url_errback"] = receiver.url + "/thumb"
    tasks[2]["url_errback"] = receiver.url + "/strip"
    r = server.request("POST", "/v2/create_stream", {"tasks": tasks})
    assert r.status == 200
    lines = r.lines()
    keys = [d["key"] for d in lines[0]]
    assert lines[0][1]["waiting_for"] == [keys[0]]
    last = {}
    for doc in lines[1:]:
        last[doc["key"]] = doc
    assert [last[k]["status"] for k in keys] == ["error"] * 3
    assert last[keys[1]]["error_code"] == errors.DEPENDENCY_FAILED
    calls = receiver.wait(2)
    assert sorted(c["path"] for c in calls) == ["/strip", "/thumb"]
    assert all(c["body"]["error_code"] == errors.DEPENDENCY_FAILED for c in calls)
    r = server.request("GET", "/v2/events")
    feed = [line for line in r.lines() if line["key"] == keys[1]]
    assert feed[0]["status"] == "queued" and feed[0]["waiting_for"] == [keys[0]]
    assert feed[-1]["error_code"] == errors.DEPENDENCY_FAILED


NODE = {"DRAGON_LEASE_SECONDS": "3", "DRAGON_CONCURRENCY": "1"}


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed")
def test_on_two_postgresql_nodes_a_chain_completes(make_server, source):
    a = make_server(backend="postgres", env={**NODE, "DRAGON_NODE_NAME": "node-a"})
    b = make_server(env={**a.env, "DRAGON_NODE_NAME": "node-b"}, account=a.account)
    # One blocking create on A: each step runs on whichever node claims it first.
    docs = a.create(chain(source["video"]))
    assert_chain_made(b, docs)
    # A dependant created on B of a task created (and run) elsewhere: the end of its input,
    # committed by any node, releases it, and B's blocked request hears of its end.
    created = [a.create(chain(source["video"])[:1], block=False)[0] for _ in range(2)]
    thumbs = [
        {"task_name": "video.thumb", "url": {"task": doc["key"]}, "time": 1} for doc in created
    ]
    ended = b.create(thumbs)
    assert [d["status"] for d in ended] == ["success", "success"], ended
    assert all(picture(a, d["result"]["output"]).size == (80, 60) for d in ended)
    keys = [d["key"] for d in docs + created + ended]
    details = b.request("POST", "/v2/status", {"tasks": keys, "details": True}).json()
    assert {d["node"] for d in details} <= {"node-a", "node-b"}
    assert all(d["attempts"] == 1 for d in details)


def test_dragon_run_and_the_sdk_express_a_chain(dragon_server, source):
    env = {"DRAGON_URL": dragon_server.url, "DRAGON_SECRET": dragon_server.secret}
    reference = json.dumps({"task": 0})
    done = dragon(
        "run",
        "video.convert",
        f"url={source['video']}",
        "width:=80",
        "+",
        "video.thumb",
        f"url:={reference}",
        "+",
        "video.strip",
        f"url:={reference}",
        "count:=4",
        "wrap:=4",
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert_chain_made(dragon_server, docs)  # each final status, in order
    failed = dragon(
        "run",
        "test.file",
        "fail:=true",
        "+",
        "test.fetch",
        f"url:={reference}",
        env=env,
        check=False,
    )
    assert failed.returncode == 1
    first, second = (json.loads(line) for line in failed.stdout.splitlines())
    assert second["error_code"] == errors.DEPENDENCY_FAILED and first["key"] in second["error"]
    usage = dragon("run", "hello", "+", env=env, check=False)
    assert usage.returncode == 2 and "followed by a task name" in usage.stderr

    with Client(dragon_server.url, dragon_server.secret) as client:
        made, fetched = client.create(
            [
                {"task_name": "test.file", "text": "from the sdk"},
                {"task_name": "test.fetch", "url": output_of(0)},
            ],
            block=True,
        )
        assert fetched["status"] == "success" and fetched["result"]["size"] == 12
        [again] = client.create(
            {"task_name": "test.fetch", "url": output_of(made["key"], "output")}, block=True
        )
        assert again["result"]["sha256"] == fetched["result"]["sha256"]


def test_the_issues_chain_starts_from_a_tus_upload(dragon_server, tmp_path, source, origin):
    """upload -> video.convert -> (video.thumb, video.strip), from one blocking create."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(origin.files["/chains/clip.mp4"][0])
    uploader = tus_client.TusClient(
        f"{dragon_server.url}/v2/uploads",
        headers={"Authorization": f"Secret {dragon_server.secret}"},
    ).uploader(str(clip), chunk_size=64 * 1024)
    uploader.upload()
    upload_id = uploader.url.rstrip("/").rsplit("/", 1)[1]
    docs = dragon_server.create(chain(f"upload:{upload_id}"))
    assert_chain_made(dragon_server, docs)
