"""accounts.client_address: the one client-address rule every per-address limit keys on."""

import re
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from accounts.client_address import (
    client_address,
    request_client_address,
    scope_client_address,
    trusted_proxies,
)
from tests.e2e.server import PROJECT_DIR, server_env

PROXIES = trusted_proxies(["127.0.0.1", "10.0.0.0/8", "2001:db8:ff::/48"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # A peer that is no trusted proxy is the client, whatever it claims to forward.
        ("198.51.100.9", "203.0.113.5", "198.51.100.9"),
        ("198.51.100.9", None, "198.51.100.9"),
        ("2001:db8::9", "203.0.113.5", "2001:db8::9"),
        # A trusted proxy with nothing forwarded: the proxy itself.
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        # Right to left, skipping trusted hops: the first untrusted address is the client ...
        ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("127.0.0.1", "203.0.113.5, 10.1.2.3", "203.0.113.5"),
        ("127.0.0.1", "203.0.113.5,10.1.2.3,10.9.9.9", "203.0.113.5"),
        # ... and whatever the client wrote to its left is never believed.
        ("127.0.0.1", "1.1.1.1, 203.0.113.5", "203.0.113.5"),
        ("127.0.0.1", "10.0.0.7, 203.0.113.5, 10.1.2.3", "203.0.113.5"),
        ("127.0.0.1", "not-an-address, 203.0.113.5", "203.0.113.5"),
        # IPv6 clients and proxies, normalized; IPv4-mapped IPv6 is the IPv4 address.
        ("127.0.0.1", "2001:DB8:0:0::5", "2001:db8::5"),
        ("2001:db8:ff::1", "2001:db8::5, 2001:db8:ff:1::2", "2001:db8::5"),
        ("::ffff:127.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("127.0.0.1", "::ffff:203.0.113.5", "203.0.113.5"),
        # Entries some proxies write with a port.
        ("127.0.0.1", "203.0.113.5:4711", "203.0.113.5"),
        ("127.0.0.1", "[2001:db8::5]:4711", "2001:db8::5"),
        # A malformed entry a trusted hop wrote: stop at that hop, never further left.
        ("127.0.0.1", "203.0.113.5, unknown", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.5, garbage, 10.1.2.3", "10.1.2.3"),
        ("127.0.0.1", "203.0.113.5,,10.1.2.3", "10.1.2.3"),
        ("127.0.0.1", "203.0.113.5, 999.1.1.1", "127.0.0.1"),
        # Every hop trusted: the farthest one.
        ("127.0.0.1", "10.1.2.3, 10.4.5.6", "10.1.2.3"),
        # No peer address at all (a Unix socket, an in-process test client).
        (None, "203.0.113.5", "unknown"),
    ],
)
def test_client_address(peer, forwarded_for, expected):
    assert client_address(peer, forwarded_for, PROXIES) == expected


def test_without_trusted_proxies_forwarded_for_is_ignored():
    assert client_address("127.0.0.1", "203.0.113.5", ()) == "127.0.0.1"


def test_scope_and_request_use_the_same_rule(settings):
    settings.CHAT_TRUSTED_PROXIES = PROXIES
    scope = {
        "client": ["127.0.0.1", 50000],
        "headers": [
            (b"host", b"chat"),
            (b"x-forwarded-for", b"1.1.1.1, 203.0.113.5"),
            (b"x-forwarded-for", b"10.1.2.3"),  # a second header continues the first
        ],
    }
    assert scope_client_address(scope) == "203.0.113.5"
    assert scope_client_address({"client": None, "headers": []}) == "unknown"
    request = RequestFactory().get(
        "/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.5"
    )
    assert request_client_address(request) == "203.0.113.5"


def test_trusted_proxies_parses_addresses_and_networks():
    assert [
        str(network) for network in trusted_proxies([" 127.0.0.1", "", "::1", "10.0.0.0/8"])
    ] == [
        "127.0.0.1/32",
        "::1/128",
        "10.0.0.0/8",
    ]


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "10.0.0.0/33", "proxy.example.com", "1.2.3"])
def test_a_bad_trusted_proxy_is_refused_with_a_clear_error(entry):
    with pytest.raises(ImproperlyConfigured, match=f"CHAT_TRUSTED_PROXIES: '{entry}'"):
        trusted_proxies([entry])


def test_readme_deployment_trusts_its_proxy_instead_of_daphne_proxy_headers():
    """daphne's --proxy-headers believes the leftmost, client-chosen X-Forwarded-For entry."""
    readme = (PROJECT_DIR / "README.md").read_text()
    production = readme[readme.index("## Production and scaling out") : readme.index("## Tests")]
    assert not re.search(r"daphne[^`\n]*--proxy-headers", production), "a daphne command uses it"
    assert "CHAT_TRUSTED_PROXIES=127.0.0.1" in production
    assert "$proxy_add_x_forwarded_for" in production


def test_a_bad_trusted_proxy_stops_the_server_at_start_up(tmp_path):
    env = server_env(tmp_path, CHAT_TRUSTED_PROXIES="127.0.0.1,10.0.0.1/8")
    result = subprocess.run(
        [sys.executable, "-c", "import crm_backend.asgi"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CHAT_TRUSTED_PROXIES: '10.0.0.1/8' is not an IP address or a CIDR network" in (
        result.stderr
    )
