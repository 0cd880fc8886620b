"""Secrets stay out of status documents and logs (issue 26, Broken 1 and 2).

A platform that answers 5xx with a body quoting the request's credentials (after enough
text that a message cut at 300 characters would end in the middle of the token) must not
put any piece of the token into the task's ``error``, on the retry path ("failed after N
tries") as on the others. A signed URL that fails shows no signature or credential in the
``error``, and a credential the access log prints (``developer_key``) is masked there.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.parse

import pytest

from tests.support import media
from tests.support.platforms import PlatformServer

# Long tokens: a message cut before scrubbing shows most of one.
TOKEN = "ya29.a0AfB_" + "tokenbody7f3a9c" * 12
DEV_KEY = "AIzaSyD-" + "devkey5e1b" * 4
APP_SECRET = "fb-app-secret-" + "91c2" * 8
CHUNK = 256 * 1024


def pieces(secret: str, size: int = 12) -> list[str]:
    """Every ``size``-character window of ``secret``: none may show, not even a part."""
    return [secret[i : i + size] for i in range(0, len(secret) - size + 1)]


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        shown = [p for p in pieces(secret) if p in text]
        assert not shown, (shown[:3], text[:2000])


@pytest.fixture(scope="module")
def platforms():
    server = PlatformServer()
    for protocol in (server.youtube, server.vimeo, server.graph):
        protocol.tokens = {TOKEN}
        protocol.echo = True
    server.youtube.dev_keys = {DEV_KEY}
    server.graph.app_secret = APP_SECRET
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(make_server, platforms):
    return make_server(
        env={
            **platforms.env,
            "DRAGON_UPLOAD_CHUNK_BYTES": str(CHUNK),
            "DRAGON_UPLOAD_MAX_TRIES": "2",
        }
    )


@pytest.fixture(scope="module")
def source(origin, tmp_path_factory):
    path = media.video(tmp_path_factory.mktemp("secrets") / "source.mp4", size="320x240")
    return origin.add("secrets/source.mp4", path.read_bytes(), "video/mp4")


TASKS = {
    "youtube": {
        "task_name": "video.upload.youtube",
        "access_token": TOKEN,
        "developer_key": DEV_KEY,
        "title": "t",
    },
    "vimeo": {"task_name": "video.upload.vimeo", "oauth2_token": TOKEN},
    "facebook": {"task_name": "video.upload.fb", "access_token": TOKEN, "app_secret": APP_SECRET},
}


@pytest.mark.parametrize("platform", sorted(TASKS))
def test_a_platform_echoing_the_token_leaves_no_piece_of_it_in_the_status(server, source, platform):
    doc = server.run_task({**TASKS[platform], "url": source})
    assert doc["status"] == "error", doc
    assert doc["error_code"] == "upload_failed", doc
    assert "failed after 2 tries: " in doc["error"], doc  # the retry path's message
    assert "internal error handling the request for" in doc["error"], doc
    r = server.request("GET", f"/v2/status?tasks={doc['key']}&details=true")
    assert_hidden(r.body.decode(), TOKEN, DEV_KEY, APP_SECRET)
    assert_hidden(str(doc), TOKEN, DEV_KEY, APP_SECRET)
    assert_hidden(server.log(), TOKEN, DEV_KEY, APP_SECRET)


SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
CREDENTIAL = "AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/s3/aws4_request"


def test_a_failing_signed_url_shows_neither_its_signature_nor_its_credential(dragon_server, origin):
    query = urllib.parse.urlencode(
        {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": CREDENTIAL,
            "X-Amz-Signature": SIGNATURE,
            "X-Amz-Expires": "300",
        }
    )
    # The fetcher names the URL that redirected to a refused one, query and all.
    url = origin.add("secrets/moved.jpg", b"", None, status=302, Location="ftp://example.com/x")
    doc = dragon_server.run_task({"task_name": "image.thumb", "url": f"{url}?{query}"})
    assert doc["status"] == "error", doc
    assert "moved.jpg" in doc["error"], doc  # the message still names what failed
    quoted = urllib.parse.quote(CREDENTIAL, safe="")
    for shown in (SIGNATURE[:12], CREDENTIAL[:12], quoted[:12]):
        assert shown not in doc["error"], doc
        assert shown not in str(doc)


def test_a_refused_signed_url_shows_no_signature_in_the_parameters_error(dragon_server):
    """A URL refused at create time (too long) is quoted in the parameters' message: its
    first 100 characters, with the signature masked."""
    url = f"https://cdn.example.com/a.jpg?X-Amz-Signature={SIGNATURE}&pad={'x' * 2100}"
    [doc] = dragon_server.create([{"task_name": "image.thumb", "url": url}])
    assert doc["error_code"] == "parameters", doc
    assert "at most" in str(doc["error"]), doc
    assert SIGNATURE[:12] not in str(doc), doc


def test_the_access_log_masks_developer_key(dragon_server):
    """``/v1/create_file`` takes a task's parameters in the query: its credentials are
    masked in the access log line, ``developer_key`` included."""
    query = urllib.parse.urlencode(
        {
            "task_name": "video.upload.youtube",
            "url": "http://127.0.0.1:9/x.mp4",
            "access_token": TOKEN,
            "developer_key": DEV_KEY,
            "title": "t",
        }
    )
    dragon_server.request("GET", f"/v1/create_file/x.mp4?{query}")
    deadline = time.monotonic() + 10  # the access log line follows the answer
    while "/v1/create_file/x.mp4?" not in dragon_server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = dragon_server.log()
    assert "/v1/create_file/x.mp4?" in log
    assert_hidden(log, TOKEN, DEV_KEY)


# -- round two of the same areas: other fields, other shapes ----------------------------------

PASSWORD = "hunter2-" + "pw7c1e" * 4


def _details(server, key: str) -> dict:
    [doc] = server.request("GET", f"/v2/status?tasks={key}&details=true").json()
    return doc


def test_a_password_in_a_url_shows_in_no_error_and_no_details(dragon_server):
    """``user:password@`` in a URL is refused at create time; the refusal quotes the URL,
    and ``details`` echo the parameters: neither shows the password."""
    [doc] = dragon_server.create(
        [{"task_name": "image.thumb", "url": f"http://alice:{PASSWORD}@127.0.0.1:9/x.jpg"}]
    )
    assert doc["error_code"] == "parameters", doc
    assert "must not carry credentials" in str(doc["error"]), doc
    details = _details(dragon_server, doc["key"])
    assert details["parameters"]["url"] == "http://********@127.0.0.1:9/x.jpg", details
    assert_hidden(str(doc) + str(details), PASSWORD)


@pytest.mark.parametrize(
    "task",
    [
        {"task_name": "image.strip", "urls": ["{signed}"]},
        {"task_name": "image.gif", "images": ["{signed}"]},
        {"task_name": "video.convert", "url": "{plain}", "subtitles": "{signed}"},
        {"task_name": "image.thumb", "url": "{plain}", "watermark": {"url": "{signed}"}},
    ],
    ids=["urls", "images", "subtitles", "watermark"],
)
def test_details_mask_signed_urls_in_every_field(dragon_server, task):
    """Every URL of a task's parameters loses its query in ``details``, whichever field or
    list holds it (only ``url`` and the callbacks did)."""
    signed = f"http://127.0.0.1:9/a.srt?X-Amz-Credential={CREDENTIAL}&X-Amz-Signature={SIGNATURE}"
    plain = "http://127.0.0.1:9/a.jpg"
    definition = {
        k: (
            [signed]
            if v == ["{signed}"]
            else {"url": signed}
            if isinstance(v, dict)
            else {"{signed}": signed, "{plain}": plain}.get(v, v)
        )
        for k, v in task.items()
    }
    [doc] = dragon_server.create([definition], block=False)
    details = _details(dragon_server, doc["key"])
    assert "http://127.0.0.1:9/a.srt?********" in str(details["parameters"]), details
    for shown in (SIGNATURE[:12], CREDENTIAL[:12]):
        assert shown not in str(details), details


def test_details_mask_signed_urls_inside_a_definition_and_keep_its_prose(dragon_server):
    """A ``video.create`` definition is text holding URLs: their credentials are masked in
    ``details``, and the rest (a ``secret`` in prose) is shown as written."""
    signed = f"http://u:{PASSWORD}@127.0.0.1:9/a.png?X-Amz-Signature={SIGNATURE}&amp;w=1"
    definition = f'<movie><image src="{signed}"/><text>the secret ingredients</text></movie>'
    [doc] = dragon_server.create(
        [{"task_name": "video.create", "definition": definition}], block=False
    )
    shown = _details(dragon_server, doc["key"])["parameters"]["definition"]
    assert 'src="http://********@127.0.0.1:9/a.png?X-Amz-Signature=********&amp;w=1"' in shown
    assert "the secret ingredients" in shown
    assert_hidden(shown, PASSWORD, SIGNATURE)


@pytest.mark.parametrize("name", ["auth", "pwd", "jwt", "sessionid", "hmac"])
def test_the_access_log_masks_other_credential_names(dragon_server, name):
    """Firebase's ``auth``, ``pwd``, ``jwt``, session ids and CDN tokens' ``hmac`` in a
    query are credentials too."""
    value = f"{name}-value-" + "9d2f" * 6
    dragon_server.request("GET", f"/v2/status?tasks=x&{name}={value}&marker={name}")
    deadline = time.monotonic() + 10  # the access log line follows the answer
    while f"marker={name}" not in dragon_server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = dragon_server.log()
    assert f"marker={name}" in log
    assert_hidden(log, value)


def test_a_storage_error_does_not_name_the_internal_s3_endpoint(make_server):
    """The S3 endpoint is the operator's internal address: a failed store says what went
    wrong (``storage_error``), not where the bucket lives."""
    hold = socket.socket()  # bound, never listening: connections are refused, and no other
    hold.bind(("127.0.0.1", 0))  # process can take the port meanwhile
    endpoint = f"http://127.0.0.1:{hold.getsockname()[1]}"
    server = make_server(
        env={
            "DRAGON_S3_BUCKET": "internal-bucket",
            "DRAGON_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
        backend="sqlite",
    )
    doc = server.run_task({"task_name": "test.file"})
    assert doc["status"] == "error", doc
    assert doc["error_code"] == "storage_error", doc
    assert endpoint.split("//")[1] not in doc["error"], doc
    assert "S3" in doc["error"], doc
    r = server.request("GET", f"/v2/status?tasks={doc['key']}&details=true")
    assert endpoint.split("//")[1] not in r.body.decode(), r.body
    hold.close()


def test_an_access_log_line_keeps_its_format_and_masks_what_the_client_chose(dragon_server):
    """One line per answer, as ``logging`` formats records and aiohttp's default format
    orders fields; the target, Referer and User-Agent come from the client and lose their
    credentials, each in its own place."""
    marker = f"marker{time.time_ns()}"
    dragon_server.request(
        "GET",
        f"/v2/status?tasks={marker}&secret={DEV_KEY}",
        headers={
            "Referer": f"https://app.example/page?api_key={DEV_KEY}",
            "User-Agent": f"curl/8.0 Bearer {TOKEN}",
        },
        auth=False,
    )
    deadline = time.monotonic() + 10  # the access log line follows the answer
    while marker not in dragon_server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    [line] = [line for line in dragon_server.log().splitlines() if marker in line]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO aiohttp\.access: 127\.0\.0\.1 "
        r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
        rf'"GET /v2/status\?tasks={marker}&secret=\*\*\* HTTP/1\.1" 401 \d+ '
        r'"https://app\.example/page\?api_key=\*\*\*" "curl/8\.0 Bearer \*\*\*"',
        line,
    ), line
    assert_hidden(line, TOKEN, DEV_KEY)
