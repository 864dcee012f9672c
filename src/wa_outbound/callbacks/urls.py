"""Which callback URLs we will post to: the guard against server-side request forgery.

A URL is checked twice: when the endpoint is created or changed, and at every delivery after
its host is resolved, so that a name re-pointed at an internal address later is still refused.
The delivery then connects to the very address checked here (no second lookup in between).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from wa_outbound.errors import UrlNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not covered by `is_global` on every Python we support, or worth naming anyway.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL's parts: where to connect, and the host to name in TLS and `Host`."""

    url: str
    scheme: str
    host: str
    port: int


def is_public(address: IPAddress) -> bool:
    """True for an address on the public internet: not loopback, private, link-local, CGNAT,
    0/8, multicast, reserved or unspecified, nor such an address mapped into IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if address.teredo is not None:
            return False
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return False
    if isinstance(address, ipaddress.IPv4Address) and (
        address in _CGNAT or address in _THIS_NETWORK
    ):
        return False
    return address.is_global


def check_url(url: str, *, allow_insecure: bool) -> Target:
    """The URL's target when its form is allowed (the addresses are checked by `resolve`).
    `allow_insecure` (development, tests) also allows http:// and non-public addresses."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowed(f"Not a valid URL: {exc}.") from None
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in schemes:
        raise UrlNotAllowed("Callback URLs must start with https://.")
    if parts.username is not None or parts.password is not None:
        raise UrlNotAllowed("Callback URLs must not carry credentials (user:password@).")
    host = parts.hostname
    if not host:
        raise UrlNotAllowed("The URL has no host.")
    if parts.fragment:
        raise UrlNotAllowed("Callback URLs must not have a fragment (#...).")
    literal = _literal(host)
    if literal is not None and not allow_insecure and not is_public(literal):
        raise UrlNotAllowed("The URL's address is not a public one.")
    return Target(url=url, scheme=parts.scheme, host=host, port=port or _default_port(parts))


async def resolve(target: Target, *, allow_insecure: bool) -> list[str]:
    """Every address the target's host resolves to, when all are allowed; else UrlNotAllowed.
    One refused address refuses the URL: a host that also resolves to an internal address
    could be steered there by whoever controls its DNS."""
    literal = _literal(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise UrlNotAllowed(f"The URL's host does not resolve: {exc}.") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UrlNotAllowed("The URL's host does not resolve.")
    if not allow_insecure and not all(is_public(a) for a in addresses):
        raise UrlNotAllowed("The URL's host resolves to an address that is not public.")
    return list(dict.fromkeys(str(a) for a in addresses))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _default_port(parts: SplitResult) -> int:
    return 443 if parts.scheme == "https" else 80
