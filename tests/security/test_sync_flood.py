"""Members who flood `chat.sync` and stop reading, through a real daphne (issue 15, items 2-3).

A sync page of the seeded room is about 70 KB. Before frame budgets and the per-socket buffer
budget, three members sending 400 syncs each and reading nothing grew the server by ~93 MiB
that it kept while they stayed connected, and none of them was closed. Run with `-s` to see
the figures. Everything is bounded in count and time and talks only to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid

import pytest
import websockets
from django.conf import settings

from tests.e2e.clients import ChatClient
from tests.e2e.conftest import login, room_id_by_name
from tests.e2e.server import manage, prepared_env, start_server
from tests.e2e.services import SharedPostgresDatabase

pytestmark = pytest.mark.e2e

ROOM = "Chat - Gerência"  # all seven demo users are members
ATTACKERS = ("ana", "carlos", "pedro")
SYNCS_PER_ATTACKER = 400
SEED_TEXT_LENGTH = 200  # 200 messages of this length: a sync page of about 70 KB
SYNC_RATE, SYNC_BURST = settings.CHAT_FRAME_BUDGETS["chat.sync"]
# Messages with long texts, so that one sync page (200 of them) is about 70 KB.
SEED = f"""
from chat.domain.models import Message, Room
from django.contrib.auth import get_user_model
room = Room.objects.get(name={ROOM!r})
author = get_user_model().objects.get(username="admin")
Message.objects.bulk_create(
    Message(room=room, author=author, text=f"{{n:04d}} " + "x" * {SEED_TEXT_LENGTH})
    for n in range(250)
)
"""


def seeded_room_server(tmp_path, **overrides: str):
    env = prepared_env(
        tmp_path, CHAT_LOG_LEVEL="WARNING", LOGIN_THROTTLE_RATE="1000/min", **overrides
    )
    manage(env, "shell", "-c", SEED)
    return start_server(env, tmp_path / "daphne.log")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Default budgets, on the database of this test run: SQLite, or PostgreSQL (where the
    flood used to cost the most: the server was still answering seconds after it stopped)."""
    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    database = SharedPostgresDatabase().create() if on_postgres else None
    overrides = {"DATABASE_URL": database.url} if database else {}
    server = seeded_room_server(tmp_path_factory.mktemp("sync-flood"), **overrides)
    yield server
    server.stop()
    if database:
        database.drop()


@pytest.fixture(scope="module")
def unmetered_server(tmp_path_factory):
    """No sync budget to speak of and a small buffer budget: the buffer budget alone is tested."""
    server = seeded_room_server(
        tmp_path_factory.mktemp("sync-flood-buffer"),
        CHAT_FRAME_BUDGETS=json.dumps({"chat.sync": [100000, 100000]}),
        CHAT_SOCKET_BUFFER_BYTES=str(256 * 1024),
    )
    yield server
    server.stop()


def rss_mib(server) -> float:
    with open(f"/proc/{server.process.pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def cpu_seconds(server) -> float:
    with open(f"/proc/{server.process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def connect_not_reading(server, room_id: str, token: str):
    """A member whose kernel takes 4 KB and whose library queues one frame: it stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    url = f"{server.ws_url}/ws/chat/{room_id}/?token={token}"
    return await websockets.connect(url, sock=sock, max_queue=1, max_size=None)


def closed_by_server(server, user: str) -> bool:
    """The server log says it closed `user`'s socket: 4429 (rate limits) or 1013 (buffer)."""
    log = server.log()
    return f"close=4429 user={user} " in log or f"slow receiver: user={user} " in log


async def wait_until_closed(server, users, timeout: float) -> bool:
    """True once the server has closed a socket of each of `users`; False at timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(closed_by_server(server, user) for user in users):
            return True
        await asyncio.sleep(0.05)
    return False


STILL_OPEN = "still open"


async def closed_code(ws, timeout: float = 10.0) -> int | str | None:
    """Read until the server ends the connection: its close code, None if it just hung up,
    STILL_OPEN if nothing came for `timeout` seconds."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return STILL_OPEN


async def chat_round_trip(server, room_id: str, member: ChatClient) -> float:
    """A well-behaved member sends a message and gets it back: seconds taken."""
    text = f"ainda aqui {uuid.uuid4()}"
    started = time.monotonic()
    await member.send_message(text)
    acknowledged = await member.next_message(timeout=15)
    assert acknowledged["message"] == text
    return time.monotonic() - started


async def attack(server, room_id: str, users, member: ChatClient) -> dict:
    """Each of `users` sends SYNCS_PER_ATTACKER syncs from the start and reads nothing."""
    sockets = [await connect_not_reading(server, room_id, login(server, user)) for user in users]
    # connection.established was read by the library before it paused; the rest is not read.
    baseline_rss, baseline_cpu = rss_mib(server), cpu_seconds(server)
    started = time.monotonic()
    frame = json.dumps({"type": "chat.sync", "after": 0})

    async def flood(ws) -> None:
        try:
            for _ in range(SYNCS_PER_ATTACKER):
                await ws.send(frame)
        except websockets.ConnectionClosed:
            pass  # closed part-way through: the point of the test

    await asyncio.gather(*(flood(ws) for ws in sockets))
    round_trips = [await chat_round_trip(server, room_id, member) for _ in range(3)]
    closed = await wait_until_closed(server, users, timeout=15)
    # What the server holds once it has closed the attackers (or given up waiting for that);
    # their sockets still read nothing.
    figures = {
        "rss_growth_mib": round(rss_mib(server) - baseline_rss, 1),
        "cpu_seconds": round(cpu_seconds(server) - baseline_cpu, 2),
        "seconds": round(time.monotonic() - started, 2),
        "closed_by_server": closed,
        "round_trips": [round(seconds, 3) for seconds in round_trips],
    }
    # Now they read (within autobahn's 1 s close handshake, their close code comes through).
    figures["codes"] = await asyncio.gather(*(closed_code(ws, timeout=5) for ws in sockets))
    await asyncio.sleep(1)
    figures["rss_growth_after_mib"] = round(rss_mib(server) - baseline_rss, 1)
    print(f"\n{len(users)} sync flooders: {figures}")
    return figures


async def test_sync_flood_of_members_who_stop_reading_is_cut_off_and_memory_stays_flat(server):
    """Three members send 400 syncs each and read nothing: closed, and the server keeps <50 MiB."""
    admin = login(server, "admin")
    room_id = room_id_by_name(server, admin, ROOM)
    member = await ChatClient.connect(server, room_id, login(server, "maria"))
    page = await member.sync(0)
    assert len(json.dumps(page)) > 60_000, "a sync page is about 70 KB"

    figures = await attack(server, room_id, ATTACKERS, member)

    assert figures["closed_by_server"], "every attacker was closed (4429 or 1013)"
    assert figures["rss_growth_mib"] < 50, figures
    assert figures["rss_growth_after_mib"] < 50, figures
    # A client that reads nothing cannot always be told why: autobahn drops it after 1 s.
    assert set(figures["codes"]) <= {4429, 1013, None}, figures["codes"]
    assert await chat_round_trip(server, room_id, member) < 5
    await member.close()


async def test_1000_syncs_in_one_second_get_rate_limited_after_the_budget(server):
    """A reading client: at most the budget's pages, then `rate_limited`, then 4429."""
    admin = login(server, "admin")
    room_id = room_id_by_name(server, admin, ROOM)
    flooder = await ChatClient.connect(server, room_id, login(server, "joao"))
    frame = json.dumps({"type": "chat.sync", "after": 0})
    baseline_cpu = cpu_seconds(server)
    started = time.monotonic()

    async def flood() -> float:
        try:
            for _ in range(1000):
                await flooder.ws.send(frame)
        except websockets.ConnectionClosed:
            pass
        return time.monotonic() - started

    async def read_all() -> tuple[list[dict], int | str | None]:
        frames = []
        try:
            while True:
                frames.append(await flooder.next_frame(timeout=5))
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            return frames, STILL_OPEN

    sending_seconds, (frames, code) = await asyncio.gather(flood(), read_all())
    elapsed = time.monotonic() - started - (5 if code == STILL_OPEN else 0)
    cpu = cpu_seconds(server) - baseline_cpu
    pages = sum(frame["type"] == "chat.history" for frame in frames)
    errors = [frame["code"] for frame in frames if frame["type"] == "error"]
    print(
        f"\n1000 syncs sent in {sending_seconds:.2f}s: {pages} pages, {len(errors)} errors, "
        f"close {code}, {elapsed:.2f}s, server CPU {cpu:.2f}s"
    )

    assert sending_seconds < 1.5, "the frames went out within about a second"
    assert pages <= SYNC_BURST + SYNC_RATE * elapsed + 1, pages
    assert errors and set(errors) == {"rate_limited"}, errors
    assert len(errors) == settings.CHAT_RATE_LIMIT_STRIKES + 1
    assert code == 4429


async def test_member_who_stops_reading_its_own_sync_answers_is_closed_with_1013(
    unmetered_server,
):
    """Without a rate limit in the way, the buffer budget alone closes a socket that stops
    reading its own answers (no broadcast involved), and the server does not keep them."""
    server = unmetered_server
    admin = login(server, "admin")
    room_id = room_id_by_name(server, admin, ROOM)
    member = await ChatClient.connect(server, room_id, login(server, "maria"))

    figures = await attack(server, room_id, ["fernanda"], member)

    assert figures["closed_by_server"], "the socket over its buffer budget was closed"
    assert "slow receiver: user=fernanda path=" in server.log()
    assert "CHAT_SOCKET_BUFFER_BYTES" in server.log()
    assert figures["rss_growth_mib"] < 50, figures
    assert figures["rss_growth_after_mib"] < 50, figures
    assert figures["codes"][0] in (1013, None), figures["codes"]
    assert await chat_round_trip(server, room_id, member) < 5
    await member.close()
