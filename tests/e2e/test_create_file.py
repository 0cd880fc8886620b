"""Thumbnails by URL: /v1/create_file and /v1/file answer 302 to a task's output file."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from PIL import Image

from tests.support import media
from tests.support.s3 import MotoS3


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def fetch(url: str, *, method: str = "GET", body=None, headers: dict | None = None):
    """(status, headers, body) of one request, redirects not followed."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def server(make_server):
    return make_server()


@pytest.fixture(scope="module")
def site(server):
    """An account whose api key only works from pages of https://good.example."""
    return server.create_account("site", "--referrer", "https://good.example")


@pytest.fixture(scope="module")
def cat(origin):
    return origin.add("create_file/cat.jpg", media.image_bytes(400, 300), "image/jpeg")


def thumb_url(server, cat, **extra) -> str:
    query = {"task_name": "image.thumb", "url": cat, "width": "40", **extra}
    return f"{server.url}/v1/create_file/cat.jpg?{urlencode(query)}"


def test_img_src_with_api_key_redirects_to_the_thumbnail_from_an_allowed_page(
    server, site, cat, origin
):
    url = thumb_url(server, cat, api_key=site["api_key"])
    hits = len(origin.hits)
    status, headers, _ = fetch(url, headers={"Referer": "https://good.example/gallery.html"})
    assert status == 302
    location = headers["Location"]
    assert server.stores(location)
    got = server.get(location)
    assert got.status == 200 and got.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(got.body)).size == (40, 30)
    assert len(origin.hits) == hits + 1

    # The same <img> on another page view: the first result, no new task, no download.
    again = fetch(url, headers={"Referer": "https://good.example/other.html"})
    assert again[0] == 302 and again[1]["Location"] == location
    # Parameter order and defaults spelled out do not make it another thumbnail.
    query = {
        "width": "40",
        "crop": "false",
        "url": cat,
        "task_name": "image.thumb",
        "api_key": site["api_key"],
    }
    same = fetch(
        f"{server.url}/v1/create_file/any-name.jpg?{urlencode(query)}",
        headers={"Referer": "https://good.example/"},
    )
    assert same[0] == 302 and same[1]["Location"] == location
    assert len(origin.hits) == hits + 1

    # The same tag on a page of another site is refused, and says where the key was.
    status, _, body = fetch(url, headers={"Referer": "https://evil.example/"})
    assert status == 401
    [error] = json.loads(body)["errors"]
    assert error["location"] == "querystring"
    assert fetch(url)[0] == 401  # no Referer at all


def test_secret_in_query_and_post_form(server, cat):
    status, headers, _ = fetch(thumb_url(server, cat, width="24", secret=server.secret))
    assert status == 302
    got = server.get(headers["Location"])
    assert Image.open(io.BytesIO(got.body)).size == (24, 18)

    body = {"task": {"task_name": "image.thumb", "url": cat, "width": 16}}
    status, posted, _ = fetch(
        f"{server.url}/v1/create_file/thumb.jpg",
        method="POST",
        body=body,
        headers={"Authorization": f"Secret {server.secret}"},
    )
    assert status == 302
    assert Image.open(io.BytesIO(server.get(posted["Location"]).body)).size == (16, 12)
    # The POST form shares the cache with the GET form of the same definition.
    query = {"task_name": "image.thumb", "url": cat, "width": "16", "secret": server.secret}
    status, got, _ = fetch(f"{server.url}/v1/create_file/x.jpg?{urlencode(query)}")
    assert status == 302 and got["Location"] == posted["Location"]


def test_filename_picks_one_of_several_outputs(server):
    query = urlencode(
        {
            "task_name": "test.file",
            "text": "two files",
            "names": ["small", "large"],
            "secret": server.secret,
        },
        doseq=True,
    )
    status, headers, _ = fetch(f"{server.url}/v1/create_file/large?{query}")
    assert status == 302
    assert server.get(headers["Location"]).body == b"two files"
    small = fetch(f"{server.url}/v1/create_file/small?{query}")
    assert small[0] == 302 and small[1]["Location"] != headers["Location"]

    status, _, body = fetch(f"{server.url}/v1/create_file/medium?{query}")
    assert status == 404
    assert json.loads(body) == {
        "status": "error",
        "message": "'medium' is not a valid filename, choose one of: 'small', 'large'",
    }


def test_failed_task_answers_400_with_its_status(server, origin):
    missing = origin.url + "/create_file/missing.jpg"
    query = urlencode({"task_name": "image.thumb", "url": missing, "secret": server.secret})
    status, _, body = fetch(f"{server.url}/v1/create_file/t.jpg?{query}")
    assert status == 400
    doc = json.loads(body)
    assert doc["status"] == "error" and doc["error_code"] == "download_failed"
    assert "404" in doc["result"]  # v1 statuses carry the error under "result"
    # Errors are not cached: once the image exists, the same URL works.
    origin.add("create_file/missing.jpg", media.image_bytes(), "image/jpeg")
    assert fetch(f"{server.url}/v1/create_file/t.jpg?{query}")[0] == 302

    query = urlencode({"task_name": "image.thumb", "secret": server.secret})
    status, _, body = fetch(f"{server.url}/v2/create_file/t.jpg?{query}")
    assert status == 400
    assert json.loads(body)["error"] == {"parameters": {"url": ["this field is required"]}}
    status, _, body = fetch(f"{server.url}/v1/create_file/t.jpg?secret={server.secret}")
    assert status == 400 and json.loads(body)["errors"][0]["name"] == "task_name"


def test_file_waits_for_an_existing_task(server):
    [doc] = server.create([{"task_name": "test.file", "text": "later"}], block=False)
    status, headers, _ = fetch(
        f"{server.url}/v1/file/out.txt?task={doc['key']}&secret={server.secret}"
    )
    assert status == 302 and server.get(headers["Location"]).body == b"later"
    status, _, body = fetch(f"{server.url}/v1/file/out.txt?task=NOPE&secret={server.secret}")
    assert status == 404 and json.loads(body)["status"] == "error"
    [info] = server.create([{"task_name": "hello", "name": "x"}])
    status, _, body = fetch(f"{server.url}/v1/file/a?task={info['key']}&secret={server.secret}")
    assert status == 404 and json.loads(body)["message"] == "this task has no output file"


def test_a_deleted_file_is_made_again(server):
    query = urlencode({"task_name": "test.file", "text": "gone soon", "secret": server.secret})
    url = f"{server.url}/v1/create_file/f?{query}"
    first = fetch(url)[1]["Location"]
    name = server.storage_name(first)
    deleted = server.request("DELETE", f"/v2/storage/files/{name}").json()
    assert deleted["deleted"] == [name]
    status, headers, _ = fetch(url)
    assert status == 302 and headers["Location"] != first
    assert server.get(headers["Location"]).body == b"gone soon"


def test_the_file_name_may_be_left_out_for_a_task_with_one_output(server, cat):
    """As the v1 reference says: "can be omitted for tasks that output a single file"."""
    query = urlencode({"task_name": "image.thumb", "url": cat, "width": "32"})
    secret = {"Authorization": f"Secret {server.secret}"}
    answers = [
        fetch(f"{server.url}/v1/create_file?{query}&secret={server.secret}"),
        fetch(f"{server.url}/v1/create_file/?{query}&secret={server.secret}"),
        fetch(f"{server.url}/v2/create_file/?{query}", headers=secret),
    ]
    body = {"task": {"task_name": "image.thumb", "url": cat, "width": 32}}
    for path in ("/v1/create_file", "/v1/create_file/", "/v2/create_file/"):
        answers.append(fetch(f"{server.url}{path}", method="POST", body=body, headers=secret))
    assert {status for status, _, _ in answers} == {302}
    [location] = {headers["Location"] for _, headers, _ in answers}  # one task, cached
    assert Image.open(io.BytesIO(server.get(location).body)).size == (32, 24)
    [doc] = server.create([{"task_name": "test.file", "text": "one"}])
    for path in ("/v1/file", "/v1/file/", "/v2/file/"):
        status, headers, _ = fetch(f"{server.url}{path}?task={doc['key']}", headers=secret)
        assert status == 302 and headers["Location"] == doc["result"]["output"], path
        assert headers["Dragon-Output"] == "stored"


def test_no_file_name_for_a_task_with_several_outputs_is_a_404_naming_them(server):
    definition = {"task_name": "test.file", "text": "two", "names": ["small", "large"]}
    secret = {"Authorization": f"Secret {server.secret}"}
    expected = {
        "status": "error",
        "message": "this task has several output files: add one's name to the path:"
        " 'small', 'large'",
    }
    for path in ("/v1/create_file", "/v1/create_file/"):
        status, _, body = fetch(
            f"{server.url}{path}", method="POST", body={"task": definition}, headers=secret
        )
        assert status == 404 and json.loads(body) == expected, path
    query = urlencode({**definition, "secret": server.secret}, doseq=True)
    status, _, body = fetch(f"{server.url}/v1/create_file/?{query}")
    assert status == 404 and json.loads(body) == expected
    # The name then picks one, from the same (cached) task.
    status, headers, _ = fetch(f"{server.url}/v1/create_file/large?{query}")
    assert status == 302 and server.get(headers["Location"]).body == b"two"


@pytest.fixture(scope="module")
def moto():
    s3 = MotoS3()
    yield s3
    s3.close()


def test_an_output_sent_to_a_signed_url_is_redirected_to(server, moto, cat):
    """An output the task's store sent elsewhere (``s3_signed``: a PUT to the account's own
    pre-signed URL) is one of its files: create_file redirects to the URL that store gave,
    the object's URL without the signature."""
    moto.client.create_bucket(Bucket="signed-outputs")
    signed = moto.client.generate_presigned_url(
        "put_object", Params={"Bucket": "signed-outputs", "Key": "thumbs/cat.jpg"}, ExpiresIn=600
    )
    definition = {
        "task_name": "image.thumb",
        "url": cat,
        "width": 20,
        "task_store": {"type": "s3_signed", "url": signed},
    }
    secret = {"Authorization": f"Secret {server.secret}"}
    status, headers, body = fetch(
        f"{server.url}/v1/create_file/", method="POST", body={"task": definition}, headers=secret
    )
    assert status == 302, body
    assert headers["Location"] == f"{moto.url}/signed-outputs/thumbs/cat.jpg"
    stored = moto.client.get_object(Bucket="signed-outputs", Key="thumbs/cat.jpg")
    assert Image.open(io.BytesIO(stored["Body"].read())).size == (20, 15)
    # The same definition again: answered from the first task, which sent nothing again.
    again = fetch(
        f"{server.url}/v1/create_file/", method="POST", body={"task": definition}, headers=secret
    )
    assert again[0] == 302 and again[1]["Location"] == headers["Location"]
