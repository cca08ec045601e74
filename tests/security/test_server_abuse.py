"""Abuse of a real daphne process: oversized and malformed frames, floods, handshake storms.

One seeded server (its own SQLite file) serves the module; each test uses its own demo users
so that per-user limits of one test never touch another. Everything is bounded in count and
time and talks only to 127.0.0.1. After each attack the server must still serve a legitimate
member, and nothing the attacker sent may have been stored.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
import urllib.request
import uuid
from collections import Counter

import pytest
import websockets

from chat.protocol import FrameError
from tests.e2e.clients import ChatClient
from tests.e2e.conftest import login, query_db, room_id_by_name
from tests.e2e.server import seeded_server

pytestmark = pytest.mark.e2e

ROOM = "Chat - Gerência"  # all seven demo users are members
STORM_SIZE = 200
FRAME_ERRORS = {code.value for code in FrameError}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = seeded_server(
        tmp_path_factory.mktemp("security-e2e"),
        # Above the storm's size, so every bad handshake reaches token validation (the
        # expensive path) instead of being cut short by the per-address limit.
        CHAT_FAILED_HANDSHAKES_BURST=str(STORM_SIZE * 2),
        LOGIN_THROTTLE_RATE="1000/min",  # logins are many here; test_api.py tests the throttle
        # Members measure the server's responsiveness with pings sent as fast as pongs come
        # back; the ping budget has its own tests (test_frame_budgets.py).
        CHAT_FRAME_BUDGETS=json.dumps({"ping": [100000, 100000]}),
        CHAT_LOG_LEVEL="WARNING",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def room_id(server) -> str:
    return room_id_by_name(server, login(server, "admin"), ROOM)


def stored_count(server) -> int:
    return query_db(server, "SELECT COUNT(*) FROM chat_message")[0][0]


def rss_kib(server) -> int:
    with open(f"/proc/{server.process.pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def room_url(server, room_id: str, token: str) -> str:
    return f"{server.ws_url}/ws/chat/{room_id}/?token={token}"


async def assert_serves(server, room_id: str, username: str) -> float:
    """A legitimate member connects, chats and gets its message back; returns seconds taken."""
    assert server.process.poll() is None, "the server process died"
    with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=10) as response:
        assert response.status == 200
    token = await asyncio.to_thread(login, server, username)
    started = time.monotonic()
    client = await ChatClient.connect(server, room_id, token)
    text = f"ainda de pé {uuid.uuid4()}"
    await client.send_message(text)
    acknowledged = await client.next_message(timeout=10)
    elapsed = time.monotonic() - started
    assert acknowledged["message"] == text
    await client.close()
    return elapsed


async def frames_heard(client: ChatClient, seconds: float = 0.5) -> list[dict]:
    """Everything a connected member receives in the next `seconds`."""
    frames = []
    try:
        while True:
            frames.append(await client.next_frame(timeout=seconds))
    except TimeoutError:
        return frames


def _presence_of_others(frame: dict, username: str) -> bool:
    """A presence frame about somebody else than `username` (earlier tests' members leaving)."""
    return frame["type"] == "presence" and frame["user"]["username"] != username


async def closed_code(ws, timeout: float = 10.0) -> int | None:
    """Read until the server ends the connection: its close code, None if it just hung up."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


# --- frames over daphne's transport cap ---------------------------------------------------


async def test_server_frames_over_the_transport_cap_are_dropped_and_memory_stays_flat(
    server, room_id
):
    """2 MiB, in one frame or in fragments, is over daphne's 1 MiB cap: dropped before the app."""
    token = login(server, "fernanda")
    watcher = await ChatClient.connect(server, room_id, login(server, "ana"))
    big = json.dumps({"message": "a" * (2 * 1024 * 1024)})
    quarter = len(big) // 4
    fragments = [big[i : i + quarter] for i in range(0, len(big), quarter)]
    before, baseline = stored_count(server), rss_kib(server)

    codes = []
    for attempt in range(6):
        async with websockets.connect(room_url(server, room_id, token), max_size=None) as ws:
            assert json.loads(await ws.recv())["type"] == "connection.established"
            try:
                await ws.send(big if attempt % 2 == 0 else iter(fragments))
            except websockets.ConnectionClosed:
                pass
            codes.append(await closed_code(ws))

    # 1009 is autobahn's "message too big"; a bare drop (no close frame) is fine too.
    assert set(codes) <= {1009, None}, codes
    assert stored_count(server) == before
    # fernanda came and went six times (presence); nothing of the oversized messages arrived.
    assert {frame["type"] for frame in await frames_heard(watcher)} <= {"presence"}
    await watcher.close()
    grown = rss_kib(server) - baseline
    # 50 MB: far below what buffering 12 MiB of payload several times over would cost, far above
    # the allocator's noise on a process that already holds ~100 MB.
    assert grown < 50 * 1024, f"RSS grew by {grown} KiB after six 2 MiB messages"
    await assert_serves(server, room_id, "fernanda")


# --- invalid UTF-8 in a text frame -----------------------------------------------------------


class RawWebSocket:
    """Just enough of RFC 6455 by hand to send what a well-behaved client library never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server, path: str) -> RawWebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert response.startswith(b"HTTP/1.1 101"), response
        return cls(reader, writer)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def recv_frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return opcode, await self.reader.readexactly(length)

    async def close_code(self) -> int | None:
        """Frames until the server's close frame: its code; None if the TCP connection just ends."""
        try:
            while True:
                opcode, payload = await self.recv_frame()
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return None

    def close(self) -> None:
        self.writer.close()


@pytest.mark.parametrize("payload", [b"\xff\xfe", b'{"message": "\xc3\x28"}', b"\xed\xa0\x80"])
async def test_server_invalid_utf8_text_frame_is_closed_and_others_are_served(
    server, room_id, payload
):
    """Bytes that are not UTF-8 (a lone surrogate's encoding included) in a text frame."""
    other = await ChatClient.connect(server, room_id, login(server, "pedro"))
    before = stored_count(server)
    raw = await RawWebSocket.connect(server, f"/ws/chat/{room_id}/?token={login(server, 'ana')}")
    opcode, established = await raw.recv_frame()
    assert (opcode, json.loads(established)["type"]) == (0x1, "connection.established")

    raw.send_frame(0x1, payload)
    code = await raw.close_code()
    raw.close()

    assert code in (1007, None), code  # 1007: invalid frame payload data, from the transport
    assert stored_count(server) == before
    await other.ws.send(json.dumps({"type": "ping"}))
    while (frame := await other.next_frame())["type"] != "pong":
        assert frame["type"] == "presence", frame  # ana came and went; nothing else
    await other.close()
    await assert_serves(server, room_id, "pedro")


# --- text that is valid JSON but cannot be encoded as UTF-8 -----------------------------------


@pytest.mark.parametrize("field", ["message", "username", "client_id"])
async def test_server_lone_surrogate_in_public_room_harms_nobody_else(server, field):
    url = f"{server.ws_url}/ws/chat/teste/"
    async with (
        websockets.connect(url) as attacker,
        websockets.connect(url) as bystander,
        websockets.connect(url) as speaker,
    ):
        for ws in (attacker, bystander, speaker):
            assert json.loads(await ws.recv())["type"] == "connection.established"
        frame = {"message": "oi", field: "\ud800"}
        await attacker.send(json.dumps(frame))  # ensure_ascii: the wire stays valid UTF-8
        answer = json.loads(await asyncio.wait_for(attacker.recv(), 5))
        await asyncio.sleep(0.3)  # whatever the attack broadcast has reached everyone by now

        text = f"depois {uuid.uuid4()}"
        await speaker.send(json.dumps({"message": text}))
        while (heard := json.loads(await asyncio.wait_for(bystander.recv(), 5))).get(
            "message"
        ) != text:
            assert heard["type"] == "chat.message", f"a bystander was hit: {heard}"
        # The attacker is refused with a frame error (or its text is made valid and sent).
        assert answer["type"] == "chat.message" or answer["code"] in FRAME_ERRORS, answer


# --- a flood of messages from one client ----------------------------------------------------


async def test_server_burst_of_1000_messages_is_rate_limited_and_others_stay_responsive(
    server, room_id
):
    flooder = await ChatClient.connect(server, room_id, login(server, "joao"))
    member = await ChatClient.connect(server, room_id, login(server, "maria"))
    run = uuid.uuid4().hex[:8]
    stop = asyncio.Event()

    async def flood() -> None:
        try:
            for number in range(1000):
                await flooder.ws.send(json.dumps({"message": f"flood-{run}-{number}"}))
        except websockets.ConnectionClosed:
            pass  # closed with 4429 part-way through: the point of the test

    async def read_flooder() -> tuple[list[dict], int | None]:
        frames = []
        try:
            while True:
                frames.append(await flooder.next_frame(timeout=15))
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None
        finally:
            stop.set()

    async def ping_member() -> tuple[list[float], list[dict]]:
        """The other member's ping -> pong round trips while the flood is on."""
        latencies, received = [], []
        while not stop.is_set():
            started = time.monotonic()
            await member.ws.send(json.dumps({"type": "ping"}))
            while (frame := await member.next_frame(timeout=10))["type"] != "pong":
                received.append(frame)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.005)
        return latencies, received

    _, (frames, close_code), (latencies, received) = await asyncio.gather(
        flood(), read_flooder(), ping_member()
    )

    acks = [frame for frame in frames if frame["type"] == "chat.message"]
    errors = [frame["code"] for frame in frames if frame["type"] == "error"]
    assert close_code == 4429
    assert errors and set(errors) == {"rate_limited"}, errors
    assert 0 < len(acks) < 1000
    stored = query_db(
        server,
        "SELECT id, text FROM chat_message WHERE text LIKE ? ORDER BY id",
        f"flood-{run}-%",
    )
    assert stored == [(ack["id"], ack["message"]) for ack in acks], "stored exactly what was acked"

    # The other member got exactly the stored messages (drain what trailed the last pong).
    try:
        while True:
            received.append(await member.next_frame(timeout=1))
    except TimeoutError:
        pass
    heard = [frame["id"] for frame in received if frame["type"] == "chat.message"]
    assert heard == [ack["id"] for ack in acks]
    # 500 ms: a round trip on an idle loop takes ~1 ms; the flood costs the event loop a few ms
    # per stored message; half a second leaves room for a busy 2-core test machine while still
    # failing if the flood monopolised the loop (it would take seconds).
    assert latencies and max(latencies) < 0.5, f"max ping round trip {max(latencies):.3f}s"
    await member.close()
    await assert_serves(server, room_id, "maria")


# --- a storm of bad-token handshakes --------------------------------------------------------


async def test_server_storm_of_bad_token_handshakes_is_refused_and_writes_nothing(server, room_id):
    admin = login(server, "admin")
    header, payload, signature = admin.split(".")
    forged_payload = base64.urlsafe_b64encode(b'{"user_id": 1, "token_type": "access"}')
    bad_tokens = [
        "garbage",
        f"{header}.{payload}.{signature[::-1]}",  # tampered signature
        f"{header}.{forged_payload.decode().rstrip('=')}.{signature}",  # tampered payload
        "eyJhbGciOiJub25lIn0.eyJ1c2VyX2lkIjoxfQ.",  # alg: none
        "x" * 5000,
    ]
    watcher = await ChatClient.connect(server, room_id, login(server, "fernanda"))
    before = stored_count(server)

    async def attempt(number: int) -> tuple[str | None, int | None]:
        token = bad_tokens[number % len(bad_tokens)]
        try:
            async with websockets.connect(room_url(server, room_id, token), open_timeout=20) as ws:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                return frame.get("code"), await closed_code(ws, timeout=20)
        except (OSError, TimeoutError, websockets.WebSocketException) as error:
            return repr(error), None

    pinger = await ChatClient.connect(server, room_id, login(server, "ana"))
    storm_over = asyncio.Event()

    async def ping_during_storm() -> list[float]:
        """A member's ping round trips while the storm is on: the server keeps answering."""
        round_trips = []
        while not storm_over.is_set():
            sent = time.monotonic()
            await pinger.ws.send(json.dumps({"type": "ping"}))
            while (await pinger.next_frame(timeout=10))["type"] != "pong":
                pass
            round_trips.append(time.monotonic() - sent)
            await asyncio.sleep(0.05)
        return round_trips

    pinging = asyncio.create_task(ping_during_storm())
    started = time.monotonic()
    outcomes = await asyncio.gather(*(attempt(n) for n in range(STORM_SIZE)))
    elapsed = time.monotonic() - started
    storm_over.set()
    round_trips = await pinging
    await pinger.close()
    assert round_trips, "the member was answered during the storm"
    assert max(round_trips) < 5, f"pings during the storm: slowest {max(round_trips):.2f}s"

    assert Counter(outcomes) == {("token_invalid", 4401): STORM_SIZE}, Counter(outcomes)
    assert elapsed < 30, f"{STORM_SIZE} refusals took {elapsed:.1f}s"  # ~1-3 s when healthy
    assert stored_count(server) == before
    # A refused socket announces nothing, not even presence (the tampered tokens carry admin's
    # id); presence of earlier tests' members leaving may still trail in.
    heard = await frames_heard(watcher)
    assert [frame for frame in heard if not _presence_of_others(frame, "admin")] == [], heard
    await watcher.close()
    # Right after the storm a member connects and chats; 5 s bounds a server that is drowning
    # (a connect + message round trip takes ~20 ms when idle).
    assert await assert_serves(server, room_id, "carlos") < 5
    assert stored_count(server) == before + 1


# --- idle half-open handshakes --------------------------------------------------------------


async def test_server_idle_half_open_handshakes_do_not_block_members(server, room_id):
    """500 sockets that start an upgrade request and go quiet: members still get in."""
    partial = (
        f"GET /ws/chat/{room_id}/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    ).encode()
    watcher = await ChatClient.connect(server, room_id, login(server, "joao"))
    before = stored_count(server)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(20):  # in small batches: a burst of SYNs overflows the listen backlog
            opened = await asyncio.gather(
                *(asyncio.open_connection("127.0.0.1", server.port) for _ in range(25))
            )
            for _, writer in opened:
                writer.write(partial)
            idle += opened
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # let the server read all the partial requests
        heard = await frames_heard(watcher)  # tokenless: nothing, presence of others at most
        assert {frame["type"] for frame in heard} <= {"presence"}, heard
        assert stored_count(server) == before

        # 5 s: a member normally gets in and chats in ~20 ms; 500 idle sockets must not starve
        # the accept loop or the event loop.
        assert await assert_serves(server, room_id, "admin") < 5
        # The attack was real: the server had not hung up on the idle sockets meanwhile.
        assert sum(not reader.at_eof() for reader, _ in idle) == 500
    finally:
        for _, writer in idle:
            writer.close()
    assert stored_count(server) == before + 1  # the member's message, nothing else
    await watcher.close()
