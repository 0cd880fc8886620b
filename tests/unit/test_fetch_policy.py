"""The address gate: which IPs may be dialled, proven at connect time (docs/security.md).

The table tests pin ``address_class``/``AddressPolicy``. The ``Fetcher`` tests use the
*default* settings against a loopback listener that counts TCP connections: the policy
must refuse every URL before a single SYN reaches it. They also guard the private aiohttp
hook (``TCPConnector._resolve_host``) that the fetcher relies on: if an aiohttp upgrade
stops routing IP literals or resolved names through it, these tests fail.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from dragon import errors
from dragon.config import Settings
from dragon.net.fetcher import AddressPolicy, Fetcher, address_class, legacy_ipv4

ADDRESSES = [
    # (address, expected class; None means public and allowed)
    ("8.8.8.8", None),
    ("93.184.216.34", None),
    ("2606:2800:220:1:248:1893:25c8:1946", None),
    ("2001:4860:4860::8888", None),
    ("::ffff:8.8.8.8", None),
    ("2002:808:808::1", None),
    ("64:ff9b::808:808", None),
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("::1", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("0.1.2.3", "an unspecified address"),
    ("::", "an unspecified address"),
    ("10.0.0.1", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fc00::1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("169.254.169.254", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("100.127.255.255", "a carrier-grade NAT address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("ff0e::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("192.0.0.9", "an IETF protocol address"),
    ("192.0.2.1", "a private address"),
    ("198.51.100.1", "a private address"),
    ("203.0.113.1", "a private address"),
    ("198.18.0.1", "a benchmarking address"),
    ("192.88.99.1", "a 6to4 relay address"),
    ("2001:db8::1", "a private address"),
    ("2001::1", "an IETF protocol address"),
    ("3fff::1", "a documentation address"),
    ("5f00::1", "a segment-routing address"),
    ("fec0::1", "a site-local address"),
    ("100::1", "a private address"),
    ("64:ff9b:1::1", "a local NAT64 address"),
    ("::7f00:1", "an IPv4-compatible address"),
    # wrapped IPv4: the embedded address decides
    ("::ffff:127.0.0.1", "a loopback address (IPv4-mapped 127.0.0.1)"),
    ("::ffff:10.1.2.3", "a private address (IPv4-mapped 10.1.2.3)"),
    ("::ffff:169.254.169.254", "a link-local address (IPv4-mapped 169.254.169.254)"),
    ("::ffff:0.0.0.0", "an unspecified address (IPv4-mapped 0.0.0.0)"),
    ("2002:7f00:1::", "a loopback address (6to4 127.0.0.1)"),
    ("2002:a9fe:a9fe::1", "a link-local address (6to4 169.254.169.254)"),
    ("2002:c0a8:101::", "a private address (6to4 192.168.1.1)"),
    ("64:ff9b::7f00:1", "a loopback address (NAT64 127.0.0.1)"),
    ("64:ff9b::a00:1", "a private address (NAT64 10.0.0.1)"),
    ("64:ff9b::6440:1", "a carrier-grade NAT address (NAT64 100.64.0.1)"),
]


@pytest.mark.parametrize(("ip", "expected"), ADDRESSES)
def test_default_policy(ip, expected):
    assert AddressPolicy().problem(ip) == expected
    if "%" not in ip:
        assert address_class(ipaddress.ip_address(ip)) == expected


@pytest.mark.parametrize(("ip", "_"), ADDRESSES)
def test_allow_private_lifts_everything(ip, _):
    assert AddressPolicy(allow_private=True).problem(ip) is None


def test_allow_list_opens_exactly_its_networks():
    policy = AddressPolicy(allow=["127.0.0.1/32", "fd00::/64"])
    assert policy.problem("127.0.0.1") is None
    assert policy.problem("fd00::5") is None
    assert policy.problem("127.0.0.2") == "a loopback address"
    assert policy.problem("169.254.169.254") == "a link-local address"
    assert policy.problem("::1") == "a loopback address"
    assert policy.problem("::ffff:127.0.0.1") is not None
    assert policy.problem("not-an-ip") == "not an IP address"


def test_policy_follows_settings():
    assert Fetcher(Settings.load(env={})).policy.allow_private is False
    env = {"DRAGON_ALLOW_PRIVATE_URLS": "1"}
    assert Fetcher(Settings.load(env=env)).policy.allow_private is True


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("127.0.0.1", None),
        ("8.8.8.8", None),
        ("example.com", None),
        ("1e3", None),
    ],
)
def test_legacy_ipv4_forms(host, expected):
    got = legacy_ipv4(host)
    assert (str(got) if got else None) == expected


# -- through Fetcher.download, default settings --------------------------------------------


class Listener:
    """A TCP listener that only counts connections (and closes them)."""

    def __init__(self) -> None:
        self.connections = 0
        self.servers: list[asyncio.AbstractServer] = []

    async def start(self, host: str, port: int = 0) -> int:
        def accepted(reader, writer):
            self.connections += 1
            writer.close()

        server = await asyncio.start_server(accepted, host, port)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    def close(self) -> None:
        for server in self.servers:
            server.close()


@pytest.fixture
async def listener():
    lst = Listener()
    yield lst
    lst.close()


def default_fetcher(**kwargs) -> Fetcher:
    return Fetcher(Settings.load(env={}, fetch_total_timeout=10.0), **kwargs)


async def download_error(fetcher: Fetcher, url: str, tmp_path) -> errors.TaskError:
    try:
        with pytest.raises(errors.TaskError) as info:
            await fetcher.download(url, tmp_path)
    finally:
        await fetcher.close()
    assert list(tmp_path.iterdir()) == []
    return info.value


def case1_urls(port: int, port6: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/a.jpg",
        f"http://localhost:{port}/",
        f"http://LOCALHOST:{port}/",
        f"http://[::1]:{port6}/",
        f"http://0.0.0.0:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://2130706433:{port}/",
        f"http://127.1:{port}/",
        f"http://0x7f.1:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://[2002:7f00:1::]:{port}/",
        f"http://[64:ff9b::7f00:1]:{port}/",
        f"http://[::]:{port6}/",
        "http://224.0.0.1/",
        "http://[fe80::1%25lo]/",
    ]


async def test_case1_every_internal_url_is_refused_without_a_connection(listener, tmp_path):
    port = await listener.start("127.0.0.1")
    port6 = await listener.start("::1")
    for url in case1_urls(port, port6):
        err = await download_error(default_fetcher(), url, tmp_path)
        assert err.code == errors.URL_FORBIDDEN, (url, err.code, err.message)
        assert "only public addresses may be fetched" in err.message, url
    assert listener.connections == 0


async def test_listener_counts_when_private_urls_are_allowed(listener, tmp_path):
    """The control for the test above: the same URLs do reach it once the policy allows."""
    port = await listener.start("127.0.0.1")
    fetcher = Fetcher(Settings.load(env={}, allow_private_urls=True, fetch_total_timeout=5.0))
    err = await download_error(fetcher, f"http://127.0.0.1:{port}/a.jpg", tmp_path)
    assert err.code == errors.DOWNLOAD_FAILED
    assert listener.connections >= 1  # aiohttp retries an idempotent request once


async def test_loopback_message_names_the_address(listener, tmp_path):
    port = await listener.start("127.0.0.1")
    err = await download_error(default_fetcher(), f"http://localhost:{port}/x", tmp_path)
    assert err.message == (
        f"http://localhost:{port}/x resolves to 127.0.0.1, a loopback address; "
        "only public addresses may be fetched"
    )


async def test_ambient_proxy_is_ignored(listener, tmp_path, monkeypatch):
    """trust_env=False: HTTP_PROXY must not route a request around the address check."""
    port = await listener.start("127.0.0.1")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    err = await download_error(default_fetcher(), "http://10.0.0.1/x", tmp_path)
    assert err.code == errors.URL_FORBIDDEN
    assert listener.connections == 0


async def test_send_applies_the_same_policy(listener):
    port = await listener.start("127.0.0.1")
    fetcher = default_fetcher()
    try:
        with pytest.raises(errors.TaskError) as info:
            await fetcher.send("POST", f"http://127.0.0.1:{port}/hook", body=b"{}")
    finally:
        await fetcher.close()
    assert info.value.code == errors.URL_FORBIDDEN
    assert listener.connections == 0


# -- case 2: DNS tricks ---------------------------------------------------------------------


class FakeResolver(AbstractResolver):
    """Resolves every name through ``answers``: a list of address lists, one per lookup
    (the last one repeats), recording each lookup."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_UNSPEC):
        self.lookups.append(host)
        ips = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            {
                "hostname": host,
                "host": ip,
                "port": port,
                "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for ip in ips
        ]

    async def close(self) -> None:
        pass


async def test_case2_one_private_address_among_public_ones(listener, tmp_path):
    port = await listener.start("127.0.0.1")
    resolver = FakeResolver(["93.184.216.34", "127.0.0.1"])
    err = await download_error(
        default_fetcher(resolver=resolver), f"http://evil.test:{port}/a.jpg", tmp_path
    )
    assert err.code == errors.URL_FORBIDDEN
    assert "resolves to 127.0.0.1, a loopback address" in err.message
    assert resolver.lookups == ["evil.test"]
    assert listener.connections == 0


async def test_case2_rebinding_between_lookups(listener, tmp_path):
    """The first lookup of evil.test answers an allowed address (127.0.0.2 stands in for a
    public one: the policy allows exactly it), whose server redirects back to evil.test;
    the next lookup answers 127.0.0.1. The fetcher dials only what it checked, so the
    second hop is refused and 127.0.0.1 never sees a connection."""
    port = await listener.start("127.0.0.1")

    async def bounce(request):
        raise web.HTTPFound(f"http://evil.test:{port}/a.jpg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", bounce)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    public_port = site._server.sockets[0].getsockname()[1]
    try:
        resolver = FakeResolver(["127.0.0.2"], ["127.0.0.1"])
        fetcher = default_fetcher(resolver=resolver, policy=AddressPolicy(allow=["127.0.0.2/32"]))
        err = await download_error(fetcher, f"http://evil.test:{public_port}/", tmp_path)
    finally:
        await runner.cleanup()
    assert err.code == errors.URL_FORBIDDEN
    assert "resolves to 127.0.0.1, a loopback address" in err.message
    assert resolver.lookups == ["evil.test", "evil.test"]
    assert listener.connections == 0
