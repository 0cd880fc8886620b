"""Referrer patterns compare a parsed scheme and a validated host, nothing else."""

import pytest

from dragon.engine.auth import referrer_allowed


@pytest.mark.parametrize(
    ("patterns", "referrer"),
    [
        (("*.example.com",), "https://app.example.com/page?x=1"),
        (("*.example.com",), "http://app.example.com./"),  # the root dot is the same host
        (("*.example.com",), "HTTPS://APP.EXAMPLE.COM/"),
        (("https://*.example.com/*",), "https://a.b.example.com/x"),
        (("app.test:8080",), "http://app.test:8080/"),
        (("javascript://app.example.com",), "javascript://app.example.com/"),
        (("10.0.0.5",), "http://10.0.0.5/"),
    ],
)
def test_allowed(patterns, referrer):
    assert referrer_allowed(patterns, referrer)


@pytest.mark.parametrize(
    ("patterns", "referrer"),
    [
        (("*.example.com",), "https://evil.com\\.example.com/"),
        (("*.example.com",), "https://evil.com%2F.example.com/"),
        (("*.example.com",), "https://evil.com%2f.example.com/"),
        (("*.example.com",), "https://[app.example.com]/"),
        (("*.example.com",), "https://app.example.com:99999/"),
        (("*.example.com",), "https://app.example.com@evil.com/"),
        (("*.example.com",), "https://evil.com/?.example.com"),
        (("*.example.com",), "https://evil .example.com/"),
        (("app.example.com",), "javascript://app.example.com/%0aalert(1)"),
        (("app.example.com",), "data://app.example.com/"),
        (("https://app.example.com",), "http://app.example.com/"),
        (("app.example.com",), "null"),
        (("app.example.com",), ""),
        (("app.example.com",), None),
    ],
)
def test_refused(patterns, referrer):
    assert not referrer_allowed(patterns, referrer)


def test_star_admits_everything_even_no_referrer():
    assert referrer_allowed(("*",), None)
    assert referrer_allowed(("*",), "https://[bad]/")
