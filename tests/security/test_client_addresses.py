"""Per-address limits through a real daphne: a client cannot pick its own address (issue 15).

Two daphne processes on one seeded database, both started as the README says (no
`--proxy-headers`): `direct` without CHAT_TRUSTED_PROXIES (clients reach it directly, so any
X-Forwarded-For is the client's own invention) and `proxied` with CHAT_TRUSTED_PROXIES=127.0.0.1,
playing the server behind nginx: the test client is the proxy, and the rightmost
X-Forwarded-For entry is what nginx would have appended (the real client); everything to its
left is what that client sent, and is forged. Small limits keep the tests fast; each test
uses its own client addresses on `proxied`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.error
import urllib.request

import pytest
import websockets

from tests.e2e.conftest import room_id_by_name
from tests.e2e.server import DEMO_PASSWORD, prepared_env, start_server

pytestmark = pytest.mark.e2e

ROOM = "Chat - Gerência"
LOGINS_PER_MINUTE = 5
FAILED_HANDSHAKES_BURST = 5
PUBLIC_BURST = 5
LIMITS = {
    "LOGIN_THROTTLE_RATE": f"{LOGINS_PER_MINUTE}/min",
    "CHAT_FAILED_HANDSHAKES_BURST": str(FAILED_HANDSHAKES_BURST),
    "CHAT_FAILED_HANDSHAKES_PER_MINUTE": "0.6",  # one token back every 100 s: none in a test
    "CHAT_PUBLIC_IP_RATE_LIMIT_BURST": str(PUBLIC_BURST),
    "CHAT_PUBLIC_IP_RATE_LIMIT_PER_SECOND": "0.01",
    "CHAT_LOG_LEVEL": "WARNING",
}
_forged = (f"198.18.{n // 250}.{n % 250 + 1}" for n in itertools.count())


def forged() -> str:
    """A new made-up address each call, as a client rotating X-Forwarded-For would send."""
    return next(_forged)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client-addresses")
    env = prepared_env(tmp, **LIMITS)
    direct = start_server(env, tmp / "direct.log")
    proxied = start_server({**env, "CHAT_TRUSTED_PROXIES": "127.0.0.1"}, tmp / "proxied.log")
    yield direct, proxied
    direct.stop()
    proxied.stop()


@pytest.fixture(scope="module")
def direct(servers):
    return servers[0]


@pytest.fixture(scope="module")
def proxied(servers):
    return servers[1]


@pytest.fixture(scope="module")
def room_id(proxied) -> str:
    return room_id_by_name(proxied, member_token(proxied, "admin", "203.0.113.250"), ROOM)


def log_in(server, password: str, forwarded_for: str, username: str = "ana") -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{server.http_url}/api/auth/token/",
        json.dumps({"username": username, "password": password}).encode(),
        {"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def member_token(server, username: str, client: str) -> str:
    status, body = log_in(server, DEMO_PASSWORD, client, username)
    assert status == 200, body
    return body["access"]


async def handshake(url: str, forwarded_for: str) -> tuple[str, int | None]:
    """A socket's first frame (error code or type) and, if refused, its close code."""
    headers = {"X-Forwarded-For": forwarded_for}
    async with websockets.connect(url, additional_headers=headers, open_timeout=20) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if frame["type"] != "error":
            return frame["type"], None
        try:
            await asyncio.wait_for(ws.recv(), 20)
        except websockets.ConnectionClosed as closed:
            return frame["code"], closed.rcvd.code if closed.rcvd else None
    raise AssertionError(f"refused but not closed: {frame}")


def bad_token_url(server, room_id: str) -> str:
    return f"{server.ws_url}/ws/chat/{room_id}/?token=not-a-token"


# --- item 1: the login throttle ---------------------------------------------------------------


def test_direct_rotating_forwarded_for_does_not_escape_the_login_throttle(direct):
    answers = [log_in(direct, f"guess{n}", forged())[0] for n in range(LOGINS_PER_MINUTE)]
    assert answers == [401] * LOGINS_PER_MINUTE
    more = [log_in(direct, f"again{n}", forged())[0] for n in range(20)]
    assert more == [429] * 20, "a new X-Forwarded-For per try must not be a new client"
    status, body = log_in(direct, DEMO_PASSWORD, forged())
    assert status == 429 and "access" not in body, "the right password waits too"


def test_proxied_login_throttle_keys_on_the_address_the_proxy_saw(proxied):
    guesser, neighbour = "203.0.113.10", "203.0.113.11"
    answers = [
        log_in(proxied, f"guess{n}", f"{forged()}, {guesser}")[0] for n in range(LOGINS_PER_MINUTE)
    ]
    assert answers == [401] * LOGINS_PER_MINUTE
    more = [log_in(proxied, f"again{n}", f"{forged()}, {guesser}")[0] for n in range(20)]
    assert more == [429] * 20, "rotating the forged left part does not help"
    assert log_in(proxied, DEMO_PASSWORD, f"{forged()}, {guesser}")[0] == 429
    # Another client behind the same proxy has its own bucket.
    assert log_in(proxied, "wrong", neighbour)[0] == 401
    assert log_in(proxied, DEMO_PASSWORD, f"{forged()}, {neighbour}")[0] == 200


# --- items 8 and 13: failed handshakes --------------------------------------------------------


async def test_direct_rotating_forwarded_for_does_not_escape_the_failed_handshake_limit(
    direct, room_id
):
    url = bad_token_url(direct, room_id)
    outcomes = [await handshake(url, forged()) for _ in range(FAILED_HANDSHAKES_BURST + 10)]
    assert (
        outcomes
        == [("token_invalid", 4401)] * FAILED_HANDSHAKES_BURST + [("rate_limited", 4429)] * 10
    )


async def test_proxied_concurrent_bad_handshakes_get_no_more_than_the_burst(proxied, room_id):
    attacker, other, member = "203.0.113.20", "203.0.113.21", "203.0.113.22"
    url = bad_token_url(proxied, room_id)
    outcomes = await asyncio.gather(*(handshake(url, f"{forged()}, {attacker}") for _ in range(40)))
    assert (
        sorted(outcomes)
        == [("rate_limited", 4429)] * (40 - FAILED_HANDSHAKES_BURST)
        + [("token_invalid", 4401)] * FAILED_HANDSHAKES_BURST
    )
    # Limited per client address: another client behind the proxy is still judged on its token.
    assert await handshake(url, other) == ("token_invalid", 4401)
    token = member_token(proxied, "carlos", member)
    member_url = f"{proxied.ws_url}/ws/chat/{room_id}/?token={token}"
    assert await handshake(member_url, f"{attacker}, {member}") == ("connection.established", None)
    # The attacker's real address stays refused, even with the right token.
    assert await handshake(member_url, f"{member}, {attacker}") == ("rate_limited", 4429)


# --- item 8: the public room's per-address limit ----------------------------------------------


async def public_socket(server, forwarded_for: str):
    ws = await websockets.connect(
        f"{server.ws_url}/ws/chat/teste/", additional_headers={"X-Forwarded-For": forwarded_for}
    )
    assert json.loads(await ws.recv())["type"] == "connection.established"
    return ws


async def answer_to(ws, text: str) -> str:
    """Send `text` to the public room: `chat.message` when it came back, else the error code."""
    await ws.send(json.dumps({"message": text}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["type"] == "error":
            return frame["code"]
        if frame["type"] == "chat.message" and frame["message"] == text:
            return "chat.message"


@pytest.mark.parametrize(("server_name", "client"), [("direct", None), ("proxied", "203.0.113.30")])
async def test_public_room_limit_keys_on_the_client_address(request, server_name, client):
    server = request.getfixturevalue(server_name)
    suffix = f", {client}" if client else ""
    first = await public_socket(server, forged() + suffix)
    second = await public_socket(server, forged() + suffix)
    try:
        sent = [await answer_to(first, f"{server_name}-{n}") for n in range(PUBLIC_BURST)]
        assert sent == ["chat.message"] * PUBLIC_BURST
        assert await answer_to(second, f"{server_name}-more") == "rate_limited"
        if client:  # another client behind the proxy has its own bucket
            neighbour = await public_socket(server, f"{forged()}, 203.0.113.31")
            assert await answer_to(neighbour, "neighbour") == "chat.message"
            await neighbour.close()
    finally:
        await first.close()
        await second.close()
