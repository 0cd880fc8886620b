"""video.upload.youtube, .vimeo, .fb and the youtube store, through ``dragon serve``, against
local servers that speak each platform's upload protocol (tests/support/platforms.py).

The chunk size is 256 KiB and the source about 570 KB, so every upload takes several
chunks, and the injected faults (503 mid-chunk, dropped connection, a server that keeps
less than was sent, an offset mismatch) make the client resume. Each test checks what the
platform's server holds: the exact bytes of the source and the metadata sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess

import pytest

from dragon.client import Client
from tests.e2e.test_create_file import fetch
from tests.support import media
from tests.support.platforms import PlatformServer

CHUNK = 256 * 1024
TOKEN = "ya29.tok-7f3a9c-secret"
DEV_KEY = "AIza-devkey-5e1b"
APP_SECRET = "fb-app-secret-91c2"
SECRETS = (TOKEN, DEV_KEY, APP_SECRET)


@pytest.fixture(scope="module")
def platforms():
    server = PlatformServer()
    for protocol in (server.youtube, server.vimeo, server.graph):
        protocol.tokens = {TOKEN}
    server.youtube.dev_keys = {DEV_KEY}
    yield server
    server.close()


@pytest.fixture()
def fresh(platforms):
    """Each test starts with no faults, no quota refusal and no recorded requests."""
    for protocol in (platforms.youtube, platforms.vimeo, platforms.graph):
        protocol.faults, protocol.quota, protocol.delay = [], False, 0.0
        protocol.requests.clear()
    platforms.vimeo.free = 10 * 1024**3
    platforms.vimeo.echo_token = False
    platforms.graph.app_secret = None
    return platforms


@pytest.fixture(scope="module")
def server(make_server, platforms):
    return make_server(env={**platforms.env, "DRAGON_UPLOAD_CHUNK_BYTES": str(CHUNK)})


@pytest.fixture(scope="module")
def impatient(make_server, platforms):
    """A server that gives up sooner: 3 failed requests in a row, 1 s without progress.

    Its 1 s read timeout also applies to downloads: use ``closing_source`` with it, since
    aiohttp 3.14 poisons a keep-alive connection left idle longer than ``sock_read``
    (aio-libs/aiohttp#12953) and the next download on it would time out.
    """
    return make_server(
        env={
            **platforms.env,
            "DRAGON_UPLOAD_CHUNK_BYTES": str(CHUNK),
            "DRAGON_UPLOAD_MAX_TRIES": "3",
            "DRAGON_FETCH_READ_TIMEOUT": "1",
            "DRAGON_TASK_TIMEOUT_SECONDS": "30",
        }
    )


@pytest.fixture(scope="module")
def source(origin, tmp_path_factory):
    path = media.video(tmp_path_factory.mktemp("upload") / "source.mp4", size="640x480")
    data = path.read_bytes()
    assert len(data) > 2 * CHUNK
    return origin.add("upload/source.mp4", data, "video/mp4"), data


@pytest.fixture(scope="module")
def closing_source(origin, source):
    """The source, served with ``Connection: close`` (see ``impatient``)."""
    _, data = source
    return origin.add("upload/closing.mp4", data, "video/mp4", Connection="close"), data


def youtube_task(url: str, **extra) -> dict:
    return {
        "task_name": "video.upload.youtube",
        "url": url,
        "access_token": TOKEN,
        "developer_key": DEV_KEY,
        "title": "Dragon test",
        "description": "Made by a test",
        "tags": ["dragon", "test"],
        "category_id": 10,
        "privacy_status": "unlisted",
        **extra,
    }


def assert_no_secret(server, *texts: str) -> None:
    """No token or secret in the given texts nor in the server's log."""
    for text in (*texts, server.log()):
        for secret in SECRETS:
            assert secret not in text


def details(server, key: str) -> str:
    """The status with ``details=true``, as text; the secret parameters are masked."""
    r = server.request("GET", f"/v2/status?tasks={key}&details=true")
    assert r.status == 200
    [doc] = r.json()
    params = {**doc["parameters"], **doc["parameters"].get("task_store", {})}
    for name in ("access_token", "developer_key", "oauth2_token", "app_secret"):
        if name in params:
            assert params[name] == "********", (name, params[name])
    return r.body.decode()


def test_youtube_resumes_after_503_drop_and_short_commit(server, fresh, source):
    url, data = source
    fresh.youtube.faults = ["503", "drop", "short"]
    doc = server.run_task(youtube_task(url))
    assert doc["status"] == "success", doc
    upload = fresh.youtube.last
    assert doc["result"]["output"] == f"https://www.youtube.com/watch?v={upload.id}"
    assert doc["result"]["duration"] == pytest.approx(2.0, abs=0.1)
    assert upload.complete and bytes(upload.data) == data
    assert upload.meta == {
        "snippet": {
            "title": "Dragon test",
            "description": "Made by a test",
            "tags": ["dragon", "test"],
            "categoryId": "10",
        },
        "status": {"privacyStatus": "unlisted"},
        "content_type": "video/mp4",
    }
    [insert] = [r for r in fresh.youtube.requests if r["method"] == "POST"]
    assert insert["query"]["key"] == DEV_KEY
    assert insert["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert insert["headers"]["X-Upload-Content-Length"] == str(len(data))
    ranges = [r["content_range"] for r in fresh.youtube.requests if r["method"] == "PUT"]
    n, half = len(data), CHUNK // 2
    assert ranges == [
        f"bytes 0-{CHUNK - 1}/{n}",  # 503 after half of it
        f"bytes */{n}",  # the state: half a chunk held
        f"bytes {half}-{half + CHUNK - 1}/{n}",  # dropped after half of it
        f"bytes */{n}",
        f"bytes {CHUNK}-{2 * CHUNK - 1}/{n}",  # the server keeps half and says so
        f"bytes {CHUNK + half}-{n - 1}/{n}",  # the rest
    ]
    assert_no_secret(server, json.dumps(doc), details(server, doc["key"]))


def test_youtube_stalled_server_and_expired_session(impatient, fresh, closing_source):
    url, data = closing_source
    server = impatient
    # The server stops reading for longer than the task may take: only the client's stall
    # timer (no byte written or answered for DRAGON_FETCH_READ_TIMEOUT) lets it finish.
    fresh.youtube.stall_seconds = 60.0
    fresh.youtube.faults = ["stall", "expire"]
    doc = server.run_task(youtube_task(url))
    assert doc["status"] == "success", doc
    assert bytes(fresh.youtube.last.data) == data
    inserts = [r for r in fresh.youtube.requests if r["method"] == "POST"]
    assert len(inserts) == 2  # the expired session was started again
    ranges = [r["content_range"] for r in fresh.youtube.requests if r["method"] == "PUT"]
    assert ranges[:3] == [
        f"bytes 0-{CHUNK - 1}/{len(data)}",
        f"bytes */{len(data)}",
        f"bytes {CHUNK // 2}-{CHUNK // 2 + CHUNK - 1}/{len(data)}",
    ]


def test_youtube_refused_token_and_quota(server, fresh, source):
    url, _ = source
    doc = server.run_task(youtube_task(url, access_token="ya29.revoked-token-0d1e"))
    assert doc["status"] == "error"
    assert doc["error_code"] == "upload_unauthorized"
    assert "Invalid Credentials" in doc["error"]
    assert "revoked-token" not in details(server, doc["key"]) + server.log()
    fresh.youtube.quota = True
    doc = server.run_task(youtube_task(url))
    assert doc["error_code"] == "upload_quota_exceeded"
    assert "exceeded your quota" in doc["error"]
    assert_no_secret(server, json.dumps(doc))


def test_youtube_gives_up_after_the_tries(impatient, fresh, closing_source):
    url, _ = closing_source
    server = impatient
    fresh.youtube.faults = ["503"] * 3 + ["drop"] * 3
    doc = server.run_task(youtube_task(url))
    assert doc["status"] == "error", doc
    assert doc["error_code"] == "upload_failed", doc["error"]
    assert "after 3 tries" in doc["error"]
    assert_no_secret(server, json.dumps(doc))


def test_youtube_progress_follows_the_bytes_sent(server, fresh, source):
    url, _ = source
    fresh.youtube.delay = 0.7  # each chunk answered after 0.7 s, so progress is flushed
    r = server.request("POST", "/v2/create_stream", {"tasks": [youtube_task(url)]})
    statuses = r.lines()[1:]  # the first line is the list of created tasks
    assert statuses[-1]["status"] == "success", statuses[-1]
    progress = [
        s["progress"]
        for s in statuses
        if s["status"] == "executing" and s.get("progress") is not None
    ]
    assert any(0 < p < 100 for p in progress), progress
    assert progress == sorted(progress)


def test_vimeo_tus_resumes_with_head(server, fresh, source):
    url, data = source
    fresh.vimeo.faults = ["503", "drop", "short"]
    free = fresh.vimeo.free
    doc = server.run_task(
        {
            "task_name": "video.upload.vimeo",
            "url": url,
            "oauth2_token": TOKEN,
            "title": "Vimeo test",
            "description": "tus",
        }
    )
    assert doc["status"] == "success", doc
    upload = fresh.vimeo.last
    assert bytes(upload.data) == data
    assert upload.meta == {"name": "Vimeo test", "description": "tus"}
    result = doc["result"]
    assert result["output"] == f"https://vimeo.com/{upload.id}"
    assert result["uploaded_file_size"] == len(data)
    assert result["free_space"] == free - len(data)
    assert result["duration"] == pytest.approx(2.0, abs=0.1)
    methods = [r["method"] for r in fresh.vimeo.requests]
    assert methods[:2] == ["GET", "POST"] and methods[-1] == "GET"
    assert methods.count("HEAD") == 2  # after the 503 and after the drop
    for r in fresh.vimeo.requests:
        if r["method"] in ("PATCH", "HEAD"):
            assert "Authorization" not in r["headers"]  # the token goes to the API only
    assert_no_secret(server, json.dumps(doc), details(server, doc["key"]))


def test_vimeo_oauth1_alone_names_oauth2_token_and_quota(server, fresh, source):
    url, data = source
    [doc] = server.create(
        [
            {
                "task_name": "video.upload.vimeo",
                "url": url,
                "consumer_key": "ck",
                "consumer_secret": "cs",
                "access_token_key": "ak",
                "access_token_secret": "as",
            }
        ]
    )
    assert doc["status"] == "error" and doc["error_code"] == "parameters"
    assert "oauth2_token" in doc["error"]["parameters"]
    assert "OAuth2" in doc["error"]["parameters"]["oauth2_token"][0]
    fresh.vimeo.free = len(data) - 1
    doc = server.run_task({"task_name": "video.upload.vimeo", "url": url, "oauth2_token": TOKEN})
    assert doc["error_code"] == "upload_quota_exceeded"
    assert not any(r["method"] == "POST" for r in fresh.vimeo.requests)
    fresh.vimeo.echo_token = True  # the refusal quotes the token back
    doc = server.run_task(
        {"task_name": "video.upload.vimeo", "url": url, "oauth2_token": "wrong-token-4c"}
    )
    assert doc["error_code"] == "upload_unauthorized"
    assert "Got 'bearer ***'" in doc["error"]
    assert "wrong-token-4c" not in json.dumps(doc) + details(server, doc["key"]) + server.log()


def test_facebook_phases_offsets_and_appsecret_proof(server, fresh, source):
    url, data = source
    fresh.graph.app_secret = APP_SECRET
    fresh.graph.faults = ["503", "drop", "mismatch"]
    doc = server.run_task(
        {
            "task_name": "video.upload.fb",
            "url": url,
            "access_token": TOKEN,
            "app_secret": APP_SECRET,
            "api_key": "1234",
            "title": "FB test",
            "description": "graph",
            "privacy": "SELF",
            "no_story": True,
        }
    )
    assert doc["status"] == "success", doc
    upload = fresh.graph.last
    assert bytes(upload.data) == data
    assert doc["result"]["output"] == f"https://www.facebook.com/watch/?v={upload.id}"
    assert doc["result"]["duration"] == pytest.approx(2.0, abs=0.1)
    assert upload.meta == {
        "version": "v23.0",
        "title": "FB test",
        "description": "graph",
        "privacy": '{"value": "SELF"}',
        "no_story": "true",
    }
    proof = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    forms = [r["form"] for r in fresh.graph.requests if "form" in r]
    assert [f["upload_phase"] for f in forms][0] == "start"
    assert [f["upload_phase"] for f in forms][-1] == "finish"
    assert all(f["appsecret_proof"] == proof for f in forms)
    assert_no_secret(server, json.dumps(doc), details(server, doc["key"]).replace(proof, ""))


def test_facebook_refusals(server, fresh, source):
    url, _ = source
    task = {"task_name": "video.upload.fb", "url": url, "access_token": "EAAB-expired-77"}
    doc = server.run_task(task)
    assert doc["error_code"] == "upload_unauthorized"
    assert "Invalid OAuth access token" in doc["error"]
    fresh.graph.app_secret = APP_SECRET  # no app_secret sent: the proof is missing
    doc = server.run_task({**task, "access_token": TOKEN})
    assert doc["error_code"] == "upload_failed"
    assert "appsecret_proof" in doc["error"]
    fresh.graph.app_secret = None
    fresh.graph.quota = True
    doc = server.run_task({**task, "access_token": TOKEN})
    assert doc["error_code"] == "upload_quota_exceeded"
    assert_no_secret(server, json.dumps(doc))


def test_youtube_store_sends_the_output_video(server, fresh, source, tmp_path):
    url, _ = source
    store = {
        "type": "youtube",
        "access_token": TOKEN,
        "developer_key": DEV_KEY,
        "title": "Converted",
        "privacy_status": "private",
    }
    doc = server.run_task(
        {"task_name": "video.convert", "url": url, "width": 320, "task_store": store}
    )
    assert doc["status"] == "success", doc
    upload = fresh.youtube.last
    assert doc["result"]["output"] == f"https://www.youtube.com/watch?v={upload.id}"
    assert upload.complete and upload.meta["snippet"]["title"] == "Converted"
    assert upload.meta["status"] == {"privacyStatus": "private"}
    uploaded = tmp_path / "uploaded.mp4"
    uploaded.write_bytes(bytes(upload.data))
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=width",
            "-of",
            "csv=p=0",
            str(uploaded),
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.split() == ["320"]
    assert_no_secret(server, json.dumps(doc), details(server, doc["key"]))

    thumb = server.run_task({"task_name": "video.thumb", "url": url, "task_store": store})
    assert thumb["status"] == "success", thumb
    assert server.stores(thumb["result"]["output"])
    assert "persistent storage" in thumb["result"]["warnings"][0]

    [refused] = server.create(
        [
            {
                "task_name": "video.convert",
                "url": url,
                "task_store": {"type": "youtube", "access_token": TOKEN},
            }
        ]
    )
    assert refused["status"] == "error" and refused["error_code"] == "parameters"
    problems = " ".join(refused["error"]["parameters"]["task_store"])
    assert "developer_key" in problems and "title" in problems


def test_youtube_store_takes_the_export_of_video_create(server, fresh, origin):
    red = origin.add("upload/red.jpg", media.image_bytes(320, 240, (255, 0, 0)), "image/jpeg")
    definition = (
        '<movie service="craftsman-1.0"><body><effect type="none" duration="1">'
        f'<image filename="{red}"/></effect></body></movie>'
    )
    store = {"type": "youtube", "access_token": TOKEN, "developer_key": DEV_KEY, "title": "Movie"}
    doc = server.run_task(
        {
            "task_name": "video.create",
            "definition": definition,
            "profile": "240p",
            "preview": True,
            "task_store": store,
        }
    )
    assert doc["status"] == "success", doc
    [upload] = [u for u in fresh.youtube.uploads.values() if u.meta["snippet"]["title"] == "Movie"]
    result = doc["result"]
    assert result["export"] == f"https://www.youtube.com/watch?v={upload.id}"
    assert upload.complete and upload.meta["content_type"] == "video/mp4"
    for name in ("thumbnail", "preview"):  # the side outputs stay with us
        assert server.stores(result[name])
        assert server.get(result[name]).status == 200
    assert "warnings" not in result


def test_create_file_redirects_to_the_video_on_the_platform(server, fresh, source):
    """A video sent to a platform is the task's output, though no store here keeps it: the
    ``youtube`` store's, or a ``video.upload.*`` task's. ``/v1/create_file`` and
    ``/v1/file`` redirect to its page, as they did before only stored files were trusted."""
    url, _ = source
    store = {
        "type": "youtube",
        "access_token": TOKEN,
        "developer_key": DEV_KEY,
        "title": "By URL",
    }
    definition = {"task_name": "video.convert", "url": url, "width": 160, "task_store": store}
    secret = {"Authorization": f"Secret {server.secret}"}
    status, headers, body = fetch(
        f"{server.url}/v1/create_file/", method="POST", body={"task": definition}, headers=secret
    )
    assert status == 302, body
    assert headers["Location"] == f"https://www.youtube.com/watch?v={fresh.youtube.last.id}"
    assert fresh.youtube.last.complete

    for task, page in (
        (youtube_task(url), "https://www.youtube.com/watch?v="),
        (
            {"task_name": "video.upload.vimeo", "url": url, "oauth2_token": TOKEN},
            "https://vimeo.com/",
        ),
        (
            {"task_name": "video.upload.fb", "url": url, "access_token": TOKEN},
            "https://www.facebook.com/",
        ),
    ):
        doc = server.run_task(task)
        assert doc["status"] == "success", doc
        assert doc["result"]["output"].startswith(page)
        status, headers, _ = fetch(f"{server.url}/v1/file?task={doc['key']}", headers=secret)
        assert status == 302 and headers["Location"] == doc["result"]["output"], task["task_name"]
        assert headers["Dragon-Output"] == "sent"
        # dragon download has nothing to fetch from the server: the video is on the platform.
        with Client(server.url, server.secret) as client:
            assert client.files(doc) == {}
