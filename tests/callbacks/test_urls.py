"""The SSRF guard: which callback URLs and addresses are refused, at creation and after DNS."""

from __future__ import annotations

import ipaddress

import pytest

from wa_outbound.callbacks.urls import check_url, is_public, resolve
from wa_outbound.errors import UrlNotAllowed

NOT_PUBLIC = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.1.2.3",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::6810:84e5"])
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
        "https:///nohost",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://example.com:99999/hook",
        "https://example.com/hook#frag",
    ],
)
def test_urls_refused_by_their_form(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        check_url(url, allow_insecure=False)


def test_allow_insecure_lets_http_and_loopback_through() -> None:
    target = check_url("http://127.0.0.1:8123/x", allow_insecure=True)
    assert (target.scheme, target.host, target.port) == ("http", "127.0.0.1", 8123)
    assert check_url("https://example.com/x", allow_insecure=False).port == 443


async def test_a_name_that_resolves_to_loopback_is_refused() -> None:
    # "localhost" resolves here through /etc/hosts, without the network.
    target = check_url("https://localhost/hook", allow_insecure=False)
    with pytest.raises(UrlNotAllowed, match="not public"):
        await resolve(target, allow_insecure=False)
    assert "127.0.0.1" in await resolve(target, allow_insecure=True)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    target = check_url("https://no-such-host.invalid/hook", allow_insecure=False)
    with pytest.raises(UrlNotAllowed, match="does not resolve"):
        await resolve(target, allow_insecure=False)
