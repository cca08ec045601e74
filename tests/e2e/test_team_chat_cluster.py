"""Team chat across two daphne processes on the real Redis and PostgreSQL: presence (with a
process killed), typing, read markers, unread counts and direct rooms live in shared state."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.conftest import call, http_json, login
from tests.e2e.services import SharedPostgresDatabase, require_shared_redis
from tests.e2e.test_scale_out import FAST_LIMITS, start_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

TTL_SECONDS, CHECK_SECONDS = 3, 1
TEAM_ENV = {
    "CHAT_PRESENCE_TTL_SECONDS": str(TTL_SECONDS),
    "CHAT_LAYER_CHECK_SECONDS": str(CHECK_SECONDS),
}
QUIET = 1.0  # seconds a socket must stay silent to count as "received nothing"
_room_numbers = itertools.count(1)


def start_team_cluster(tmp_dir, database) -> list:
    # start_cluster passes FAST_LIMITS itself; pass only what they do not already say.
    overrides = {key: value for key, value in TEAM_ENV.items() if FAST_LIMITS.get(key) != value}
    clash = set(overrides) & set(FAST_LIMITS)
    assert not clash, f"FAST_LIMITS changed {clash}; these tests assume {TEAM_ENV}"
    return start_cluster(tmp_dir, database, **overrides)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Processes A and B on one PostgreSQL database and one Redis, presence TTL 3 s."""
    require_shared_redis()
    database = SharedPostgresDatabase().create()
    servers = start_team_cluster(tmp_path_factory.mktemp("team-cluster"), database)
    yield servers
    for server in servers:
        server.stop()
    database.drop()


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster a test may kill."""
    require_shared_redis()
    database = SharedPostgresDatabase().create()
    servers = start_team_cluster(tmp_path, database)
    yield servers
    for server in servers:
        server.stop()
    database.drop()


# --- helpers ------------------------------------------------------------------------------


class Team:
    """Seeded users' tokens and ids, and a fresh room per test (no frames from other tests)."""

    def __init__(self, server, *names: str) -> None:
        self.token = {name: login(server, name) for name in names}
        self.id = {
            name: http_json(f"{server.http_url}/api/auth/me/", token=token)["id"]
            for name, token in self.token.items()
        }

    def ref(self, name: str) -> dict:
        return {"id": self.id[name], "username": name}

    def new_room(self, server, admin: str, *members: str) -> str:
        status, room = call(
            server,
            "POST",
            "/api/chat/rooms/",
            self.token[admin],
            {"name": f"Equipe {next(_room_numbers)}", "type": "group"},
        )
        assert status == 201, room
        for name in members:
            status, _ = call(
                server,
                "POST",
                f"/api/chat/rooms/{room['id']}/members/",
                self.token[admin],
                {"user_id": self.id[name]},
            )
            assert status == 201
        return room["id"]


async def connect(server, room: str, token: str) -> ChatClient:
    """A socket that sees every frame, presence, typing and read included."""
    return await ChatClient.connect(server, room, token, ignore=())


async def next_frame_of(client: ChatClient, kind: str, timeout: float = 5.0) -> dict:
    """The next frame of type `kind`, passing over others (error frames fail the test)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.next_frame(max(0.01, deadline - time.monotonic()))
        assert frame["type"] != "error", frame
        if frame["type"] == kind:
            return frame


async def assert_silent(client: ChatClient, kind: str, seconds: float = QUIET) -> None:
    """No frame of type `kind` arrives within `seconds`."""
    with pytest.raises(asyncio.TimeoutError):
        await next_frame_of(client, kind, timeout=seconds)


def online(server, room: str, token: str) -> list[str]:
    status, body = call(server, "GET", f"/api/chat/rooms/{room}/presence/", token)
    assert status == 200, body
    return [user["username"] for user in body["online"]]


def unread(server, room: str, token: str) -> int:
    status, rooms = call(server, "GET", "/api/chat/rooms/", token)
    assert status == 200, rooms
    return next(r["unread_count"] for r in rooms if r["id"] == room)


def presence(team: Team, room: str, name: str, status: str) -> dict:
    return {"type": "presence", "room": room, "user": team.ref(name), "status": status}


# --- presence -----------------------------------------------------------------------------


async def test_cluster_presence_crosses_processes(cluster):
    """Online/offline of a member on B reach A; tabs on both processes count once."""
    a, b = cluster
    team = Team(a, "admin", "maria")
    room = team.new_room(a, "admin", "maria")
    watcher_on_a = await connect(a, room, team.token["admin"])

    maria_on_b = await connect(b, room, team.token["maria"])
    assert await next_frame_of(watcher_on_a, "presence") == presence(team, room, "maria", "online")
    assert online(a, room, team.token["admin"]) == ["admin", "maria"]
    assert online(b, room, team.token["maria"]) == ["admin", "maria"]

    maria_on_a = await connect(a, room, team.token["maria"])  # a second tab, on A
    await assert_silent(watcher_on_a, "presence")
    await maria_on_b.close()
    await assert_silent(watcher_on_a, "presence")  # still online on A
    assert online(a, room, team.token["admin"]) == ["admin", "maria"]

    await maria_on_a.close()
    assert await next_frame_of(watcher_on_a, "presence") == presence(team, room, "maria", "offline")
    assert online(a, room, team.token["admin"]) == ["admin"]
    assert online(b, room, team.token["admin"]) == ["admin"]
    await watcher_on_a.close()


async def test_cluster_killed_process_users_go_offline_after_the_ttl(own_cluster):
    """SIGKILL on B: nobody closes maria's socket, her presence expires and A announces it."""
    a, b = own_cluster
    team = Team(a, "admin", "maria")
    room = team.new_room(a, "admin", "maria")
    watcher_on_a = await connect(a, room, team.token["admin"])
    maria_on_b = await connect(b, room, team.token["maria"])
    assert await next_frame_of(watcher_on_a, "presence") == presence(team, room, "maria", "online")
    # Outlive the TTL first: renewals by B's watchdog keep her online meanwhile.
    await asyncio.sleep(TTL_SECONDS + CHECK_SECONDS)
    await assert_silent(watcher_on_a, "presence", seconds=0.1)
    assert online(a, room, team.token["admin"]) == ["admin", "maria"]

    b.kill()
    killed_at = time.monotonic()
    limit = TTL_SECONDS + 2 * CHECK_SECONDS
    offline = await next_frame_of(watcher_on_a, "presence", timeout=limit + 5)
    elapsed = time.monotonic() - killed_at

    assert offline == presence(team, room, "maria", "offline")
    assert elapsed <= limit + 1, f"offline announced {elapsed:.1f}s after the kill"
    assert online(a, room, team.token["admin"]) == ["admin"]
    await assert_silent(watcher_on_a, "presence", seconds=2 * CHECK_SECONDS)  # announced once
    _, code = await maria_on_b.closed_with()
    assert code in (None, 1006)

    back_on_a = await connect(a, room, team.token["maria"])
    assert await next_frame_of(watcher_on_a, "presence") == presence(team, room, "maria", "online")
    assert online(a, room, team.token["admin"]) == ["admin", "maria"]
    await back_on_a.close()
    await watcher_on_a.close()


# --- typing and edits ---------------------------------------------------------------------


async def test_cluster_typing_and_edits_cross_processes(cluster):
    a, b = cluster
    team = Team(a, "admin", "maria")
    room = team.new_room(a, "admin", "maria")
    admin_on_a = await connect(a, room, team.token["admin"])
    maria_on_b = await connect(b, room, team.token["maria"])

    await maria_on_b.ws.send(json.dumps({"type": "typing", "is_typing": True}))
    typing = await next_frame_of(admin_on_a, "typing")
    assert (typing["user"], typing["is_typing"]) == (team.ref("maria"), True)
    await maria_on_b.send_message("oi, equpie")
    message = await admin_on_a.next_message()

    status, _ = call(
        a,
        "PATCH",
        f"/api/chat/rooms/{room}/messages/{message['id']}/",
        team.token["maria"],
        {"message": "oi, equipe"},
    )
    assert status == 200
    updated = await next_frame_of(maria_on_b, "chat.message.updated")
    assert (updated["id"], updated["message"]) == (message["id"], "oi, equipe")
    await admin_on_a.ws.send(json.dumps({"type": "chat.delete", "message_id": message["id"]}))
    deleted = await next_frame_of(maria_on_b, "chat.message.deleted")
    assert deleted["id"] == message["id"]
    await admin_on_a.close()
    await maria_on_b.close()


# --- read markers -------------------------------------------------------------------------


async def test_cluster_read_markers_cross_processes(cluster):
    a, b = cluster
    team = Team(a, "admin", "maria")
    room = team.new_room(a, "admin", "maria")
    admin_on_a = await connect(a, room, team.token["admin"])
    maria_on_b = await connect(b, room, team.token["maria"])
    maria_laptop_on_a = await connect(a, room, team.token["maria"])
    ids = []
    for text in ("um", "dois", "três"):
        await admin_on_a.send_message(text)
        ids.append((await admin_on_a.next_message())["id"])
    assert unread(a, room, team.token["maria"]) == 3
    assert unread(b, room, team.token["admin"]) == 0, "own messages are never unread"

    await maria_on_b.ws.send(json.dumps({"type": "read", "message_id": ids[1]}))
    expected = {"type": "read", "room": room, "user": team.ref("maria"), "message_id": ids[1]}
    assert await next_frame_of(admin_on_a, "read") == expected
    assert await next_frame_of(maria_laptop_on_a, "read") == expected, "her other device"
    assert await next_frame_of(maria_on_b, "read") == expected, "the marker now stored"
    assert unread(a, room, team.token["maria"]) == 1

    status, body = call(
        b, "POST", f"/api/chat/rooms/{room}/read/", team.token["maria"], {"message_id": ids[2]}
    )
    assert (status, body) == (200, {"message_id": ids[2]})
    assert (await next_frame_of(admin_on_a, "read"))["message_id"] == ids[2]
    assert (await next_frame_of(maria_on_b, "read"))["message_id"] == ids[2]
    assert unread(a, room, team.token["maria"]) == 0

    await maria_on_b.close()
    await maria_laptop_on_a.close()
    await admin_on_a.send_message("quatro")
    await admin_on_a.next_message()
    assert unread(b, room, team.token["maria"]) == 1, "correct while she is away"
    await admin_on_a.close()


# --- direct rooms -------------------------------------------------------------------------


def test_cluster_direct_room_created_at_once_from_both_processes_is_one_room(cluster):
    """Each pair asks at the same moment, one side on A, the other on B: one room per pair."""
    a, b = cluster
    pairs = [("ana", "carlos"), ("fernanda", "pedro"), ("joao", "ana")]
    team = Team(a, *{name for pair in pairs for name in pair})
    for first, second in pairs:
        start = threading.Barrier(2)
        answers = {}

        def ask(server, name, other, start=start, answers=answers):
            start.wait(timeout=10)
            answers[name] = call(
                server, "POST", "/api/chat/direct/", team.token[name], {"user_id": team.id[other]}
            )

        threads = [
            threading.Thread(target=ask, args=(a, first, second)),
            threading.Thread(target=ask, args=(b, second, first)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        statuses = sorted(status for status, _ in answers.values())
        assert statuses == [200, 201], answers
        room_ids = {body["id"] for _, body in answers.values()}
        assert len(room_ids) == 1, answers
        (room_id,) = room_ids
        status, again = call(
            a, "POST", "/api/chat/direct/", team.token[first], {"user_id": team.id[second]}
        )
        assert (status, again["id"], again["type"]) == (200, room_id, "direct")
        names = sorted(member["username"] for member in again["members"])
        assert names == sorted([first, second])


# --- threads, reactions and changes (issue 17) -----------------------------------------------


async def test_cluster_reactions_and_replies_cross_processes_each_told_its_own(cluster):
    """A reaction on A reaches B's sockets with `me` for each receiver; a reply on B reaches A
    with its root's new count; a member who was away recovers both from B by change cursor."""
    a, b = cluster
    team = Team(a, "admin", "maria", "joao")
    room = team.new_room(a, "admin", "maria", "joao")
    admin_on_a = await connect(a, room, team.token["admin"])
    maria_on_b = await connect(b, room, team.token["maria"])
    joao_on_b = await connect(b, room, team.token["joao"])
    cursor = joao_on_b.established["room"]["change_seq"]
    await joao_on_b.close()

    await admin_on_a.send_message("votação")
    root = await next_frame_of(maria_on_b, "chat.message")
    await admin_on_a.ws.send(
        json.dumps({"type": "reaction.add", "message_id": root["id"], "emoji": "👍"})
    )
    seen_by_maria = await next_frame_of(maria_on_b, "chat.message.reactions")
    seen_by_admin = await next_frame_of(admin_on_a, "chat.message.reactions")
    assert seen_by_maria["reactions"] == [{"emoji": "👍", "count": 1, "me": False}]
    assert seen_by_admin["reactions"] == [{"emoji": "👍", "count": 1, "me": True}]

    await maria_on_b.ws.send(
        json.dumps({"type": "chat.message", "message": "eu voto sim", "reply_to": root["id"]})
    )
    reply = await next_frame_of(admin_on_a, "chat.message")
    summary = await next_frame_of(admin_on_a, "chat.message.updated")
    assert reply["reply_to"] == root["id"]
    assert (summary["id"], summary["reply_count"]) == (root["id"], 1)

    status, changes = call(
        b, "GET", f"/api/chat/rooms/{room}/changes/?after={cursor}", team.token["joao"]
    )
    assert status == 200 and not changes["has_more"]
    (recovered,) = changes["results"]
    assert (recovered["id"], recovered["reply_count"]) == (root["id"], 1)
    assert recovered["reactions"] == [{"emoji": "👍", "count": 1, "me": False}]
    assert recovered["change_seq"] == summary["change_seq"]
    await admin_on_a.close()
    await maria_on_b.close()


async def test_cluster_notifications_reach_the_users_sockets_on_every_process(cluster):
    """A mention written on A reaches the mentioned user's sockets on A and on B, in rooms other
    than the one mentioned in; `@here` counts a member online on B; the feed agrees on both."""
    a, b = cluster
    team = Team(a, "admin", "maria", "joao")
    room = team.new_room(a, "admin", "maria", "joao")
    elsewhere_a = team.new_room(a, "admin", "maria")
    elsewhere_b = team.new_room(b, "admin", "maria")
    maria_on_a = await connect(a, elsewhere_a, team.token["maria"])
    maria_on_b = await connect(b, elsewhere_b, team.token["maria"])
    maria_in_room_on_b = await connect(b, room, team.token["maria"])
    admin_on_a = await connect(a, room, team.token["admin"])

    await admin_on_a.send_message("@maria pode revisar?")
    assert (await next_frame_of(admin_on_a, "chat.message"))["mentions"] == [team.id["maria"]]
    for socket in (maria_on_a, maria_on_b, maria_in_room_on_b):
        frame = await next_frame_of(socket, "notification")
        assert frame["notification"]["kind"] == "mention"
        assert frame["notification"]["room"]["id"] == room
        assert frame["notification"]["message"]["message"] == "@maria pode revisar?"
    await assert_silent(admin_on_a, "notification")

    await admin_on_a.send_message("@here reunião agora")
    stored = await next_frame_of(admin_on_a, "chat.message")
    assert stored["mentions"] == [team.id["maria"]], "joao has no socket open anywhere"
    assert (await next_frame_of(maria_on_b, "notification"))["notification"]["message"]["id"] == (
        stored["id"]
    )

    for server in (a, b):
        status, feed = call(server, "GET", "/api/chat/notifications/", team.token["maria"])
        assert status == 200, feed
        assert [n["message"]["message"] for n in feed["results"][:2]] == [
            "@here reunião agora",
            "@maria pode revisar?",
        ]
        status, feed = call(server, "GET", "/api/chat/notifications/", team.token["joao"])
        assert status == 200 and not [n for n in feed["results"] if n["room"]["id"] == room]
    for socket in (maria_on_a, maria_on_b, maria_in_room_on_b, admin_on_a):
        await socket.close()


# --- rooms of CRM records (issue 18) ----------------------------------------------------------


async def test_cluster_a_deals_new_owner_closes_the_old_ones_socket_on_the_other_process(cluster):
    """The deal's owner changes through process A: the old owner's socket to the deal's room on
    process B closes with removed_from_room / 4403 within a second; the new owner has the room."""
    a, b = cluster
    team = Team(a, "maria", "joao")
    status, deal = call(a, "POST", "/api/crm/deals/", team.token["maria"], {"title": "Expansão"})
    assert status == 201, deal
    status, room = call(
        a, "GET", f"/api/chat/records/crm.deal/{deal['id']}/room/", team.token["maria"]
    )
    assert status == 200 and room["record"]["label"] == "Negócio: Expansão", room
    maria_on_b = await connect(b, room["id"], team.token["maria"])

    changed = time.monotonic()  # the PATCH's own time counts: the removal runs on its commit
    status, _ = call(
        a, "PATCH", f"/api/crm/deals/{deal['id']}/", team.token["maria"], {"owner": team.id["joao"]}
    )

    assert status == 200
    error, code = await maria_on_b.closed_with(timeout=5)
    assert (error["code"], code) == ("removed_from_room", 4403)
    assert time.monotonic() - changed < 1.0
    status, rooms = call(b, "GET", "/api/chat/rooms/", team.token["joao"])
    assert room["id"] in [r["id"] for r in rooms]
    status, _ = call(b, "GET", f"/api/chat/rooms/{room['id']}/messages/", team.token["maria"])
    assert status == 404
