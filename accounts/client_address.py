"""Who a request or socket comes from: the ONE rule every per-address limit keys on.

The direct peer (Django's REMOTE_ADDR, an ASGI scope's `client`) is the client, unless it is
one of CHAT_TRUSTED_PROXIES. Only then is X-Forwarded-For read, right to left: each trusted
proxy appended the address it was talking to, so the first address from the right that is
not a trusted proxy is the client. Everything left of it was written by that client and is
never believed (a client rotating it must not get fresh rate-limit buckets).

Imported by the settings module (to parse CHAT_TRUSTED_PROXIES once), so no Django models.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"  # a peer without an IP address (a Unix socket, a test client)


def trusted_proxies(entries: Iterable[str]) -> tuple[Network, ...]:
    """CHAT_TRUSTED_PROXIES parsed: addresses and CIDR networks; a bad entry stops start-up."""
    return networks_setting("CHAT_TRUSTED_PROXIES", entries)


def networks_setting(name: str, entries: Iterable[str]) -> tuple[Network, ...]:
    """A setting's list of addresses and CIDR networks; a bad entry stops start-up."""
    networks = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not an IP address or a CIDR network "
                f"such as 10.0.0.0/8 ({error})"
            ) from None
    return tuple(networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...] | None = None
) -> str:
    """The client's address, given the direct peer and the X-Forwarded-For header it sent."""
    if trusted is None:
        trusted = settings.CHAT_TRUSTED_PROXIES
    hop = _parse(peer) if peer else None
    if hop is None:
        return peer or UNKNOWN
    if not forwarded_for or not _is_trusted(hop, trusted):
        return str(hop)
    for entry in reversed(forwarded_for.split(",")):
        address = _parse(entry)
        if address is None:
            # A trusted proxy wrote something that is not an address: go no further left than
            # that proxy (its clients then share its limits; believing less is never a bypass).
            return str(hop)
        if not _is_trusted(address, trusted):
            return str(address)
        hop = address
    return str(hop)  # every hop is trusted: the farthest one is the client


def scope_client_address(scope: dict) -> str:
    """client_address of an ASGI connection (WebSocket or HTTP scope)."""
    client = scope.get("client")
    forwarded = [value for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
    return client_address(
        client[0] if client else None, b",".join(forwarded).decode("latin-1") or None
    )


def request_client_address(request) -> str:
    """client_address of a Django (or DRF) request."""
    return client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def _is_trusted(address: IPAddress, trusted: tuple[Network, ...]) -> bool:
    return any(address in network for network in trusted)


def _parse(entry: str) -> IPAddress | None:
    """An address as proxies write it ("203.0.113.7", "2001:db8::1", with or without a port:
    "203.0.113.7:4711", "[2001:db8::1]:4711"); IPv4-mapped IPv6 as IPv4; None if malformed."""
    entry = entry.strip()
    if entry.startswith("["):
        entry = entry[1:].partition("]")[0]
    elif entry.count(":") == 1:
        entry = entry.partition(":")[0]
    try:
        address = ipaddress.ip_address(entry)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
