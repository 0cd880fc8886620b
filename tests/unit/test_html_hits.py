"""html_hits: each media source a page can use, charsets, base href, dedup and limits.

Pure parsing on small HTML strings; no server. ``PAGE`` is where every page pretends to
live, so relative URLs resolve to ``http://site.test/dir/...``.
"""

from __future__ import annotations

import pytest

from dragon.media import html_hits
from dragon.media.html_hits import decode, largest_candidate, parse_srcset, scrape

PAGE = "http://site.test/dir/page.html"


def hits(body: str, head: str = "", **kwargs) -> dict:
    html = f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"
    return scrape(html.encode(), PAGE, **kwargs)["hits"]


def urls(hit_list: list[dict]) -> list[str]:
    return [h["url"] for h in hit_list]


# -- Open Graph, Twitter, link ----------------------------------------------------------------


def test_og_image_with_structured_properties():
    head = """
      <meta property="og:image" content="/a.jpg">
      <meta property="og:image:width" content="800">
      <meta property="og:image:height" content="600">
      <meta property="og:image:type" content="image/jpeg">
      <meta property="og:image" content="https://cdn.test/b.png">
      <meta property="og:image:type" content="image/png">"""
    images = hits("", head)["images"]
    assert images == [
        {
            "url": "http://site.test/a.jpg",
            "source": "og:image",
            "width": 800,
            "height": 600,
            "mime": "image/jpeg",
        },
        {"url": "https://cdn.test/b.png", "source": "og:image", "mime": "image/png"},
    ]


def test_og_secure_url_belongs_to_the_preceding_image():
    head = """
      <meta property="og:image" content="http://cdn.test/a.jpg">
      <meta property="og:image:secure_url" content="https://cdn.test/a.jpg">
      <meta property="og:image:width" content="640">"""
    images = hits("", head)["images"]
    assert urls(images) == ["http://cdn.test/a.jpg", "https://cdn.test/a.jpg"]
    assert [h.get("width") for h in images] == [640, 640]


def test_og_video_and_twitter_cards():
    head = """
      <meta name="og:video" content="https://v.test/clip.mp4">
      <meta property="og:video:secure_url" content="https://v.test/clip.mp4">
      <meta property="og:video:type" content="video/mp4">
      <meta property="og:video:width" content="1280">
      <meta name="twitter:image" content="//cdn.test/tw.jpg">
      <meta name="twitter:player:stream" content="https://v.test/stream.m3u8">
      <meta name="twitter:player:stream:content_type" content="application/x-mpegURL">"""
    found = hits("", head)
    assert found["videos"] == [
        {
            "url": "https://v.test/clip.mp4",
            "source": "og:video",
            "mime": "video/mp4",
            "width": 1280,
        },
        {
            "url": "https://v.test/stream.m3u8",
            "source": "twitter:player:stream",
            "mime": "application/x-mpegurl",
        },
    ]
    assert found["images"] == [{"url": "http://cdn.test/tw.jpg", "source": "twitter:image"}]


def test_link_image_src():
    found = hits("", '<link rel="image_src" href="thumb.jpg"><link rel="icon" href="f.ico">')
    assert found["images"] == [{"url": "http://site.test/dir/thumb.jpg", "source": "link"}]


# -- img, srcset, picture --------------------------------------------------------------------


def test_img_src_lazy_and_sizes():
    body = """
      <img src="data:image/gif;base64,R0lGOD" data-src="lazy.jpg" width="100" height="50px">
      <img src="plain.png" width="100%">"""
    assert hits(body)["images"] == [
        {"url": "http://site.test/dir/lazy.jpg", "source": "img", "width": 100, "height": 50},
        {"url": "http://site.test/dir/plain.png", "source": "img"},
    ]


def test_srcset_largest_by_width_descriptor():
    body = '<img src="a.jpg" srcset="a-320.jpg 320w, a-1280.jpg 1280w, a-640.jpg 640w">'
    assert hits(body)["images"] == [
        {"url": "http://site.test/dir/a.jpg", "source": "img"},
        {"url": "http://site.test/dir/a-1280.jpg", "source": "srcset", "width": 1280},
    ]


def test_srcset_largest_by_density_descriptor():
    assert hits('<img srcset="b.jpg, b3.jpg 3x, b2.jpg 2x">')["images"] == [
        {"url": "http://site.test/dir/b3.jpg", "source": "srcset"}
    ]


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        ("a.jpg 1x, b.jpg 2x", ("b.jpg", None)),
        ("a.jpg", ("a.jpg", None)),
        ("/w_100,h_100/a.jpg 100w, /w_900,h_900/b.jpg 900w", ("/w_900,h_900/b.jpg", 900)),
        ("a.jpg 2x, b.jpg 2x", ("a.jpg", None)),  # ties go to the first
        ("a.jpg 3x, b.jpg 50w", ("b.jpg", 50)),  # width descriptors outrank densities
        ("big.jpg 9zx, small.jpg 1x", ("small.jpg", None)),  # invalid candidate dropped
        (" , ", None),
        ("", None),
    ],
)
def test_largest_candidate(srcset, expected):
    assert largest_candidate(srcset) == expected


def test_parse_srcset_commas_in_urls_and_parentheses():
    assert parse_srcset("a.jpg,b.jpg 2x") == [("a.jpg,b.jpg", ["2x"])]
    assert parse_srcset("a.jpg, b.jpg 2x") == [("a.jpg", []), ("b.jpg", ["2x"])]
    assert parse_srcset("a.jpg (x, y) 2x, b.jpg 3x") == [
        ("a.jpg", ["(x,", "y)", "2x"]),
        ("b.jpg", ["3x"]),
    ]


def test_picture_sources():
    body = """<picture>
      <source srcset="p.avif 1x, p2.avif 2x" type="image/avif">
      <source srcset="p.webp" type="image/webp">
      <img src="p.jpg"></picture>"""
    assert hits(body)["images"] == [
        {"url": "http://site.test/dir/p2.avif", "source": "picture", "mime": "image/avif"},
        {"url": "http://site.test/dir/p.webp", "source": "picture", "mime": "image/webp"},
        {"url": "http://site.test/dir/p.jpg", "source": "img"},
    ]


# -- video, audio, iframes -------------------------------------------------------------------


def test_video_src_poster_and_sources():
    body = """<video src="v.webm" poster="poster.jpg" width="320" height="240">
      <source src="v.mp4" type='video/mp4; codecs="avc1.42E01E"'></video>"""
    found = hits(body)
    assert found["videos"] == [
        {"url": "http://site.test/dir/v.webm", "source": "video", "width": 320, "height": 240},
        {"url": "http://site.test/dir/v.mp4", "source": "video", "mime": "video/mp4"},
    ]
    assert found["images"] == [{"url": "http://site.test/dir/poster.jpg", "source": "poster"}]


def test_audio_and_its_sources_are_ignored():
    found = hits('<audio src="a.mp3" controls><source src="a.ogg" type="audio/ogg"></audio>')
    assert found == {"images": [], "videos": []}


def test_iframes_of_video_hosts_only():
    body = """
      <iframe src="https://www.youtube.com/embed/abc123" width="560" height="315"></iframe>
      <iframe src="https://www.youtube-nocookie.com/embed/def"></iframe>
      <iframe data-src="https://player.vimeo.com/video/42"></iframe>
      <iframe src="//www.dailymotion.com/embed/video/x7"></iframe>
      <iframe src="https://ads.example.com/embed/video/1"></iframe>
      <iframe src="https://www.youtube.com/subscribe_widget?c=x"></iframe>"""
    assert hits(body)["videos"] == [
        {
            "url": "https://www.youtube.com/embed/abc123",
            "source": "iframe",
            "width": 560,
            "height": 315,
        },
        {"url": "https://www.youtube-nocookie.com/embed/def", "source": "iframe"},
        {"url": "https://player.vimeo.com/video/42", "source": "iframe"},
        {"url": "http://www.dailymotion.com/embed/video/x7", "source": "iframe"},
    ]


# -- JSON-LD ---------------------------------------------------------------------------------


def test_json_ld_graph_arrays_and_nesting():
    head = """<script type="application/ld+json">
      {"@context": "https://schema.org", "@graph": [
        {"@type": "Article", "image": {"@type": "ImageObject", "url": "/art.jpg",
                                       "width": {"@type": "QuantitativeValue", "value": 1200},
                                       "height": "630"}},
        {"@type": "VideoObject", "contentUrl": "https://v.test/film.mp4",
         "encodingFormat": "video/mp4", "width": 1920,
         "thumbnailUrl": ["https://v.test/t1.jpg", "https://v.test/t2.jpg"]}
      ]}</script>
      <script type="application/ld+json">[{"@type": ["schema:ImageObject"],
        "contentUrl": "https://img.test/x.png"}]</script>"""
    found = hits("", head)
    assert found["images"] == [
        {"url": "http://site.test/art.jpg", "source": "json-ld", "width": 1200, "height": 630},
        {"url": "https://v.test/t1.jpg", "source": "json-ld"},
        {"url": "https://v.test/t2.jpg", "source": "json-ld"},
        {"url": "https://img.test/x.png", "source": "json-ld"},
    ]
    assert found["videos"] == [
        {"url": "https://v.test/film.mp4", "source": "json-ld", "mime": "video/mp4", "width": 1920},
    ]


def test_malformed_json_ld_is_ignored():
    head = (
        """<script type="application/ld+json">{"@type": "ImageObject", "url": </script>
      <script type="application/ld+json">"""
        + "[" * 5000
        + "]" * 5000
        + """</script>
      <script type="application/ld+json">{"@type": "ImageObject",
        "contentUrl": "https://ok.test/a.jpg"}</script>
      <script>var x = {"@type": "ImageObject", "contentUrl": "https://no.test/b.jpg"}</script>"""
    )
    assert urls(hits("", head)["images"]) == ["https://ok.test/a.jpg"]


# -- URLs: base, schemes, dedup, limits ------------------------------------------------------


def test_base_href_applies_to_the_whole_page():
    head = '<meta property="og:image" content="og.jpg"><base href="https://cdn.test/assets/">'
    found = hits('<img src="a.jpg"><img src="/root.jpg"><img src="//other.test/c.jpg">', head)
    assert urls(found["images"]) == [
        "https://cdn.test/assets/og.jpg",
        "https://cdn.test/assets/a.jpg",
        "https://cdn.test/root.jpg",
        "https://other.test/c.jpg",
    ]


def test_relative_base_href_and_unusable_base():
    assert urls(hits('<img src="a.jpg">', '<base href="../up/">')["images"]) == [
        "http://site.test/up/a.jpg"
    ]
    assert urls(hits('<img src="a.jpg">', '<base href="javascript:void(0)">')["images"]) == [
        "http://site.test/dir/a.jpg"
    ]


def test_only_http_urls():
    body = """<img src="data:image/png;base64,iVBOR"><img src="javascript:alert(1)">
      <img src="blob:https://site.test/uuid"><img src="ftp://f.test/a.jpg">
      <img src="http://user:pw@site.test/a.jpg"><img src="file:///etc/passwd">
      <video src="blob:x"></video><img src="  https://ok.test/a b.jpg  ">"""
    found = hits(body)
    assert urls(found["images"]) == ["https://ok.test/a%20b.jpg"]
    assert found["videos"] == []


def test_dedup_keeps_first_place_and_fills_gaps():
    head = '<meta property="og:image" content="http://site.test/dir/a.jpg">'
    body = """<img src="b.jpg"><img src="a.jpg" width="300" height="200">
      <img src="/dir/b.jpg"><img src="c.jpg"><img src="b.jpg" width="10">"""
    assert hits(body, head)["images"] == [
        {"url": "http://site.test/dir/a.jpg", "source": "og:image", "width": 300, "height": 200},
        {"url": "http://site.test/dir/b.jpg", "source": "img", "width": 10},
        {"url": "http://site.test/dir/c.jpg", "source": "img"},
    ]


def test_hits_are_capped_per_kind(monkeypatch):
    monkeypatch.setattr(html_hits, "MAX_HITS", 3)
    body = "".join(f'<img src="{i}.jpg">' for i in range(10)) + '<video src="v.mp4"></video>'
    page = f"<html><body>{body}</body></html>".encode()
    found = scrape(page, PAGE)
    assert urls(found["hits"]["images"]) == [f"http://site.test/dir/{i}.jpg" for i in range(3)]
    assert len(found["hits"]["videos"]) == 1
    assert found["truncated"] == ["images"]


# -- title ----------------------------------------------------------------------------------


def test_title_prefers_og_title_and_collapses_whitespace():
    head = "<title>  The\n\t page   title </title>"
    assert scrape(f"<html><head>{head}</head></html>".encode(), PAGE)["page_title"] == (
        "The page title"
    )
    head += '<meta property="og:title" content="  Open\n Graph  ">'
    assert scrape(f"<html><head>{head}</head></html>".encode(), PAGE)["page_title"] == (
        "Open Graph"
    )


def test_title_ignores_svg_titles_and_may_be_missing():
    page = b"<html><body><svg><title>icon</title></svg><p>x</p></body></html>"
    assert scrape(page, PAGE)["page_title"] is None
    page = b"<html><head><title> </title></head></html>"
    assert scrape(page, PAGE)["page_title"] is None


# -- charsets and sniffing ------------------------------------------------------------------


LATIN1_PAGE = (
    '<html><head><meta charset="iso-8859-1"><title>Caf\u00e9 cr\u00e8me</title></head>'
    '<body><img src="/\u00e9t\u00e9.jpg"></body></html>'
).encode("latin-1")


def test_latin1_page_declared_by_meta_charset():
    found = scrape(LATIN1_PAGE, PAGE)
    assert found["page_title"] == "Caf\u00e9 cr\u00e8me"
    assert urls(found["hits"]["images"]) == ["http://site.test/\u00e9t\u00e9.jpg"]


def test_meta_http_equiv_charset():
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        "<title>\u041f\u0440\u0438\u0432\u0435\u0442</title></head></html>"
    ).encode("cp1251")
    assert scrape(page, PAGE)["page_title"] == "\u041f\u0440\u0438\u0432\u0435\u0442"


def test_header_charset_wins_over_meta():
    page = ('<html><head><meta charset="utf-8"><title>\u00e9</title></head></html>').encode(
        "latin-1"
    )
    assert scrape(page, PAGE)["page_title"] == "\ufffd"  # as declared: broken UTF-8
    assert scrape(page, PAGE, charset="ISO-8859-1")["page_title"] == "\u00e9"


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        (b"caf\xc3\xa9", None, "caf\u00e9"),  # default UTF-8
        (b"caf\xe9", None, "caf\ufffd"),  # undeclared latin-1: replacement, no error
        (b"\x93q\x94", "latin1", "\u201cq\u201d"),  # latin-1 is decoded as windows-1252
        (b"\xef\xbb\xbfcaf\xc3\xa9", "latin1", "caf\u00e9"),  # a BOM beats the header
        (b"\xff\xfe" + "caf\u00e9".encode("utf-16-le"), None, "caf\u00e9"),
        (b"abc", "rot13", "abc"),  # not a text encoding: ignored
        (b"abc", "no-such-charset", "abc"),
        (b'<meta charset="utf-16"><p>\xc3\xa9', None, '<meta charset="utf-16"><p>\u00e9'),
    ],
)
def test_decode(data, charset, expected):
    assert decode(data, charset) == expected


@pytest.mark.parametrize(
    ("data", "mime", "is_page"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png", False),
        (b"just some text", None, False),
        (b'{"json": true}', "application/json", False),
        (b"<!-- hi -->\n<HTML><p>x", None, True),
        (b"<!DOCTYPE html><title>x</title>", None, True),
        (b"<header>x</header>", None, False),  # <head> must not match <header>
        (b"<p>fragment</p>", "text/html", True),
        (
            b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'>",
            "application/xml",
            True,
        ),
    ],
)
def test_non_html_is_refused(data, mime, is_page):
    assert (scrape(data, PAGE, mime=mime) is not None) is is_page
