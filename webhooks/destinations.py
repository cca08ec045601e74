"""Where a webhook may be sent: http(s) URLs whose host resolves to public addresses only.

Server-side request forgery: a subscriber must not make this server POST to its own loopback,
the private network behind it or a cloud's metadata service (169.254.169.254). The host is
resolved when the subscription is created and again at every delivery (DNS may change
meanwhile), and the delivery connects to the address that was checked, never resolving again.
CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS lifts the rule for the networks it lists (tests: the
receiver they start on 127.0.0.1). No Django models here: settings.py parses with it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
EVERY_NETWORK = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


class DestinationRefused(Exception):
    """A webhook URL this server will not POST to; the message says why (no secret in it)."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL: its parts, and the address to connect to."""

    url: SplitResult
    address: str

    @property
    def port(self) -> int:
        return self.url.port or (443 if self.url.scheme == "https" else 80)

    @property
    def target(self) -> str:
        """The request line's path and query."""
        return (self.url.path or "/") + (f"?{self.url.query}" if self.url.query else "")


def private_networks_allowed(value: str | Iterable[str]) -> tuple[Network, ...]:
    """CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS parsed: false (none), true (all), or a list of
    addresses / CIDR networks such as 127.0.0.1/32; a bad entry stops start-up."""
    entries = [value] if isinstance(value, str) else list(value)
    entries = [e.strip() for entry in entries for e in entry.split(",") if e.strip()]
    if [e.lower() for e in entries] in ([], ["false"], ["0"], ["no"]):
        return ()
    if [e.lower() for e in entries] in (["true"], ["1"], ["yes"]):
        return EVERY_NETWORK
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS: {error}; use true, false or networks such "
            "as 127.0.0.1/32,10.0.0.0/8"
        ) from None


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv6 spelling of an IPv4 address, translated


def _embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv6 one stands for (::ffff:127.0.0.1, 6to4, NAT64), if any: it is
    where the connection really goes."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _public(address: Address) -> bool:
    # is_global: none of IANA's special-purpose ranges (loopback, private, link-local,
    # shared 100.64/10, documentation, benchmarking...); multicast and reserved on top.
    address = _embedded_ipv4(address)
    return address.is_global and not (address.is_multicast or address.is_reserved)


def address_check(address: Address) -> None:
    if _public(address):
        return
    if any(address in network for network in settings.CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS):
        return
    raise DestinationRefused(
        f"{address} is a loopback, private, link-local, multicast or reserved address; "
        "webhooks go to public addresses only (CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS)"
    )


def url_parts(url: str) -> SplitResult:
    """The URL's parts, if it is one a webhook can have: http(s), a host, no credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise DestinationRefused(f"not a URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("a webhook URL is http:// or https://")
    if not parts.hostname:
        raise DestinationRefused("a webhook URL names a host")
    if parts.username or parts.password:
        raise DestinationRefused("a webhook URL carries no credentials: it is signed instead")
    return parts


def resolve(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise DestinationRefused(f"the host {host!r} does not resolve ({error})") from None
    # An IPv6 scope ("fe80::1%eth0") is dropped: the address alone says what it is.
    return list(dict.fromkeys(ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos))


def destination_check(url: str) -> Destination:
    """The URL, checked: every address its host resolves to must be allowed (one private
    address among public ones is refused: DNS can hand out any of them)."""
    parts = url_parts(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(parts.hostname, port)
    for address in addresses:
        address_check(address)
    return Destination(parts, str(addresses[0]))
