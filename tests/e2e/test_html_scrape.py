"""html.scrape end to end: a real server fetches pages from the local origin and scrapes them."""

from __future__ import annotations

from tests.support.media import image_bytes

PAGE = """<!doctype html>
<html><head>
  <title>  A   page
  about dragons </title>
  <meta property="og:image" content="og.jpg">
  <meta property="og:image:width" content="1200">
  <meta property="og:image:height" content="630">
  <script type="application/ld+json">
    {"@type": "VideoObject", "contentUrl": "/media/film.mp4", "thumbnailUrl": "thumb.jpg"}
  </script>
</head><body>
  <img src="a.jpg" srcset="a-small.jpg 320w, a-big.jpg 1600w">
  <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-src="lazy.jpg">
  <img src="og.jpg">
  <video poster="poster.jpg"><source src="clip.webm" type="video/webm"></video>
  <audio><source src="song.mp3"></audio>
  <iframe src="https://www.youtube.com/embed/dQw4w9WgXcQ"></iframe>
</body></html>
"""


def test_scrape_follows_redirects_and_resolves_against_the_final_url(dragon_server, origin):
    page = origin.add("scrape/pages/dragons.html", PAGE.encode(), "text/html")
    start = origin.add("scrape/go", b"", None, status=302, Location=page)
    status = dragon_server.run_task({"task_name": "html.scrape", "url": start})
    assert status["status"] == "success", status
    result = status["result"]
    base = origin.url + "/scrape/pages/"
    assert result["page_title"] == "A page about dragons"
    assert result["hits"]["images"] == [
        {"url": base + "og.jpg", "source": "og:image", "width": 1200, "height": 630},
        {"url": base + "thumb.jpg", "source": "json-ld"},
        {"url": base + "a.jpg", "source": "img"},
        {"url": base + "a-big.jpg", "source": "srcset", "width": 1600},
        {"url": base + "lazy.jpg", "source": "img"},
        {"url": base + "poster.jpg", "source": "poster"},
    ]
    assert result["hits"]["videos"] == [
        {"url": origin.url + "/media/film.mp4", "source": "json-ld"},
        {"url": base + "clip.webm", "source": "video", "mime": "video/webm"},
        {"url": "https://www.youtube.com/embed/dQw4w9WgXcQ", "source": "iframe"},
    ]


def test_scrape_latin1_page_declared_by_meta(dragon_server, origin):
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
        "<title>Cr\u00e8me br\u00fbl\u00e9e</title></head><body></body></html>"
    )
    # Served without a charset: the page's own declaration must be honoured.
    url = origin.add("scrape/latin1.html", html.encode("latin-1"), "text/html")
    status = dragon_server.run_task({"task_name": "html.scrape", "url": url})
    assert status["status"] == "success", status
    assert status["result"] == {
        "page_title": "Cr\u00e8me br\u00fbl\u00e9e",
        "hits": {"images": [], "videos": []},
    }


def test_scrape_refuses_an_image(dragon_server, origin):
    url = origin.add("scrape/not-a-page.html", image_bytes(fmt="PNG"), "text/html")
    status = dragon_server.run_task({"task_name": "html.scrape", "url": url})
    assert status["status"] == "error", status
    assert status["error_code"] == "unsupported_media"
    assert "is not an HTML page (image/png)" in status["error"]


def test_scrape_refuses_pages_over_5_mb(dragon_server, origin):
    html = b"<html><body>" + b"x" * (5 * 1024 * 1024) + b"</body></html>"
    url = origin.add("scrape/huge.html", html, "text/html")
    status = dragon_server.run_task({"task_name": "html.scrape", "url": url})
    assert status["status"] == "error", status
    assert status["error_code"] == "download_too_large"


def test_scrape_requires_a_url(dragon_server):
    status = dragon_server.run_task({"task_name": "html.scrape", "url": "javascript:alert(1)"})
    assert status["status"] == "error", status
    assert "url" in status["error"]["parameters"]
