"""Referrer patterns naming an IP literal: brackets enclose an IPv6 address, nothing else."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def local_app_account(dragon_server):
    """An account whose api key works only from a page served on ``[::1]:3000``."""
    return dragon_server.create_account("ipv6-referrer", "--referrer", "http://[::1]:3000")


def _create_from(server, account, referrer: str):
    return server.request(
        "POST",
        "/v2/create",
        {"tasks": [{"task_name": "hello", "name": "x"}], "block": True},
        auth=False,
        headers={"Authorization": f"Api-Key {account['api_key']}", "Referer": referrer},
    )


@pytest.mark.parametrize(
    "referrer",
    [
        "http://1:3000/",
        "http://[::2]:3000/",
        "http://[::1]:3001/",
        # Text after the brackets, which Python's URL parser drops from the host:
        "http://[::1].evil.com:3000/",
        "http://[::1]evil.com:3000/",
        "http://[::1]:3000:3000/",
    ],
)
def test_an_ipv6_pattern_is_not_a_character_class(dragon_server, local_app_account, referrer):
    r = _create_from(dragon_server, local_app_account, referrer)
    assert r.status == 401, (referrer, r.body)


@pytest.mark.parametrize("referrer", ["http://[::1]:3000/app", "http://[0:0::1]:3000/"])
def test_the_ipv6_page_itself_is_admitted(dragon_server, local_app_account, referrer):
    r = _create_from(dragon_server, local_app_account, referrer)
    assert r.status == 200, (referrer, r.body)
    assert r.json()[0]["status"] == "success"
