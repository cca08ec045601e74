"""Two daphne processes sharing the real Redis and PostgreSQL: nothing stays in one process."""

import asyncio
import json
import signal
import urllib.error
import urllib.request
import uuid

import psycopg
import pytest

from tests.e2e.clients import ChatClient, history_after
from tests.e2e.conftest import http_json, login, room_id_by_name
from tests.e2e.server import prepared_env, seeded_server, start_server
from tests.e2e.services import SharedPostgresDatabase, require_shared_redis, unique_prefix

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

FAST_LIMITS = {
    "CHAT_RATE_LIMIT_PER_SECOND": "1000",
    "CHAT_RATE_LIMIT_BURST": "1000",
    "CHAT_LAYER_CHECK_SECONDS": "1",
}


def start_cluster(tmp_dir, database, count: int = 2, **overrides) -> list:
    env = prepared_env(
        tmp_dir,
        DATABASE_URL=database.url,
        REDIS_URL=require_shared_redis(),
        CHANNEL_LAYER_PREFIX=unique_prefix(),
        **FAST_LIMITS,
        **overrides,
    )
    return [start_server(env, tmp_dir / f"daphne-{index}.log") for index in range(count)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Processes A and B on one PostgreSQL database and one Redis."""
    require_shared_redis()
    database = SharedPostgresDatabase().create()
    servers = start_cluster(tmp_path_factory.mktemp("cluster"), database)
    yield servers
    for server in servers:
        server.stop()
    database.drop()


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster a test may kill."""
    require_shared_redis()
    database = SharedPostgresDatabase().create()
    servers = start_cluster(tmp_path, database)
    yield servers
    for server in servers:
        server.stop()
    database.drop()


def tokens(server, *names):
    return [login(server, name) for name in names]


async def test_cluster_messages_cross_processes(cluster):
    a, b = cluster
    admin, maria = tokens(a, "admin", "maria")
    room = room_id_by_name(a, admin, "Chat - Gerência")
    on_a = await ChatClient.connect(a, room, admin)
    on_b = await ChatClient.connect(b, room, maria)

    await on_a.send_message("de A para B")
    assert (await on_b.next_message())["message"] == "de A para B"
    await on_b.send_message("de B para A")
    assert (await on_a.next_message())["message"] == "de A para B"  # its own ack first
    assert (await on_a.next_message())["message"] == "de B para A"
    await on_a.close()
    await on_b.close()


async def test_cluster_public_room_crosses_processes(cluster):
    import json

    import websockets

    a, b = cluster
    async with (
        websockets.connect(f"{a.ws_url}/ws/chat/teste/") as on_a,
        websockets.connect(f"{b.ws_url}/ws/chat/teste/") as on_b,
    ):
        await on_a.recv()
        await on_b.recv()
        await on_a.send(json.dumps({"message": "público entre processos"}))
        frame = json.loads(await asyncio.wait_for(on_b.recv(), 5))
    assert frame["message"] == "público entre processos"


async def test_cluster_removed_member_is_closed_on_the_other_process(cluster):
    a, b = cluster
    admin, joao = tokens(a, "admin", "joao")
    room = room_id_by_name(a, admin, "Chat - Vendas")
    joao_id = (await ChatClient.connect(b, room, joao)).established["user"]["id"]
    joao_on_b = await ChatClient.connect(b, room, joao)

    request = urllib.request.Request(
        f"{a.http_url}/api/chat/rooms/{room}/members/{joao_id}/",
        method="DELETE",
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert urllib.request.urlopen(request, timeout=5).status == 204

    error, code = await joao_on_b.closed_with()
    assert (error["code"], code) == ("removed_from_room", 4403)

    added = http_json(
        f"{a.http_url}/api/chat/rooms/{room}/members/", data={"user_id": joao_id}, token=admin
    )
    assert added["id"] == joao_id
    again = await ChatClient.connect(b, room, joao)  # adding lets them connect at once
    await again.close()


async def test_cluster_concurrent_senders_everyone_sees_history_order(cluster):
    """Many senders on both processes: every receiver and every after= poller sees the
    room exactly as stored, in id order, with no gap and no duplicate."""
    a, b = cluster
    names = ["admin", "maria", "joao", "ana", "carlos", "fernanda"]
    token = dict(zip(names, tokens(a, *names), strict=True))
    room = room_id_by_name(a, token["admin"], "Chat - Gerência")
    start_after = max([m["id"] for m in history_after(a, token["admin"], room, 0)] or [0])
    per_sender, senders = 40, ["admin", "maria", "joao", "ana"]
    expected_total = per_sender * len(senders)

    receivers = [
        await ChatClient.connect(a, room, token["carlos"]),
        await ChatClient.connect(b, room, token["fernanda"]),
    ]
    sending = [
        await ChatClient.connect(a if i % 2 == 0 else b, room, token[name])
        for i, name in enumerate(senders)
    ]

    async def send_all(client, name):
        for number in range(per_sender):
            await client.send_message(f"{name} {number}")

    async def receive_all(client):
        return [(await client.next_message(timeout=15))["id"] for _ in range(expected_total)]

    async def poll_after():
        seen, last = [], start_after
        while len(seen) < expected_total:
            server = a if len(seen) % 2 else b
            page = await asyncio.to_thread(history_after, server, token["admin"], room, last)
            if page:
                seen += [m["id"] for m in page]
                last = page[-1]["id"]
            await asyncio.sleep(0.01)
        return seen

    results = await asyncio.gather(
        *(receive_all(r) for r in receivers),
        poll_after(),
        *(send_all(c, n) for c, n in zip(sending, senders, strict=True)),
    )
    stored = [m["id"] for m in history_after(a, token["admin"], room, start_after)]
    assert len(stored) == expected_total
    assert results[0] == stored, "receiver on A sees history order"
    assert results[1] == stored, "receiver on B sees history order"
    assert results[2] == stored, "after= polling never skipped a committed message"
    for client in receivers + sending:
        await client.close()


async def test_cluster_chat_sync_recovers_what_a_client_missed(cluster):
    a, b = cluster
    admin, pedro = tokens(a, "admin", "pedro")
    room = room_id_by_name(a, admin, "Chat - Gerência")
    pedro_on_b = await ChatClient.connect(b, room, pedro)
    sender = await ChatClient.connect(a, room, admin)
    await sender.send_message("antes da queda")
    last_seen = (await pedro_on_b.next_message())["id"]
    assert (await sender.next_message())["id"] == last_seen  # its ack, so each next one is
    await pedro_on_b.close()

    missed = [f"perdida {n} {uuid.uuid4()}" for n in range(3)]
    for text in missed:
        await sender.send_message(text)
        await sender.next_message()

    pedro_back = await ChatClient.connect(b, room, pedro)
    history = await pedro_back.sync(after=last_seen)
    assert [m["message"] for m in history["messages"]] == missed
    assert history["has_more"] is False
    await sender.send_message("ao vivo de novo")
    assert (await pedro_back.next_message())["message"] == "ao vivo de novo"
    await sender.close()
    await pedro_back.close()


async def test_cluster_sigkill_of_one_process_loses_nothing(own_cluster):
    a, b = own_cluster
    admin, maria, joao = tokens(a, "admin", "maria", "joao")
    room = room_id_by_name(a, admin, "Chat - Gerência")
    sender_on_a = await ChatClient.connect(a, room, admin)
    watcher_on_a = await ChatClient.connect(a, room, joao)
    victim_on_b = await ChatClient.connect(b, room, maria)
    await sender_on_a.send_message("antes")
    last_seen = (await victim_on_b.next_message())["id"]

    b.kill()
    _, code = await victim_on_b.closed_with()
    assert code in (None, 1006), "a killed process cannot say goodbye"

    texts = [f"durante {n}" for n in range(5)]
    for text in texts:
        await sender_on_a.send_message(text)
    watched = [(await watcher_on_a.next_message())["message"] for _ in range(6)]
    assert watched == ["antes", *texts], "clients of the surviving process notice nothing"

    recovered = history_after(a, maria, room, last_seen)
    assert [m["message"] for m in recovered] == texts
    back_on_a = await ChatClient.connect(a, room, maria)
    await sender_on_a.send_message("depois")
    assert (await back_on_a.next_message())["message"] == "depois"
    for client in (sender_on_a, watcher_on_a, back_on_a):
        await client.close()


async def test_server_sigterm_closes_sockets_with_1001(tmp_path):
    server = seeded_server(tmp_path)
    token = login(server, "admin")
    client = await ChatClient.connect(
        server, room_id_by_name(server, token, "Chat - Gerência"), token
    )
    server.process.send_signal(signal.SIGTERM)
    _, code = await client.closed_with()
    server.process.wait(timeout=15)
    assert code == 1001


async def test_core_layer_socket_outlives_group_expiry(tmp_path):
    """RedisChannelLayer forgets group members after group_expiry; the watchdog re-adds them."""
    server = seeded_server(
        tmp_path,
        REDIS_URL=require_shared_redis(),
        CHANNEL_LAYER_PREFIX=unique_prefix(),
        REDIS_CHANNEL_LAYER="core",
        CHANNEL_LAYER_GROUP_EXPIRY="2",
        CHAT_LAYER_CHECK_SECONDS="0.5",
    )
    try:
        admin, maria = tokens(server, "admin", "maria")
        room = room_id_by_name(server, admin, "Chat - Gerência")
        sender = await ChatClient.connect(server, room, admin)
        idle = await ChatClient.connect(server, room, maria)
        await asyncio.sleep(5)  # well past group_expiry
        await sender.send_message("ainda aí?")
        assert (await idle.next_message())["message"] == "ainda aí?"
        await sender.close()
        await idle.close()
    finally:
        server.stop()


def test_healthz_on_cluster_reports_redis_round_trip(cluster):
    for server in cluster:
        with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=5) as response:
            assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{cluster[0].http_url}/api/auth/me/", timeout=5)
    assert error.value.code == 401


def http_call(server, method: str, path: str, token: str, data: dict) -> dict:
    request = urllib.request.Request(
        f"{server.http_url}{path}",
        data=json.dumps(data).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def committed_edits(server, message_id: int) -> list[str]:
    """The texts one message took, in the order its edits committed (the audit trail)."""
    with psycopg.connect(server.env["DATABASE_URL"]) as conn:
        before = conn.execute(
            "SELECT previous_text FROM chat_messagerevision WHERE message_id = %s ORDER BY id",
            [message_id],
        ).fetchall()
        (final,) = conn.execute(
            "SELECT text FROM chat_message WHERE id = %s", [message_id]
        ).fetchone()
    return [text for (text,) in before[1:]] + [final]


async def test_cluster_socket_and_rest_changes_on_both_processes_arrive_in_commit_order(cluster):
    """A socket on A and REST on B post into one room, then edit one message, all at once:
    members on both processes see every post in history order and every edit in the order it
    committed, the last being what the database holds."""
    a, b = cluster
    names = ["admin", "maria", "carlos", "fernanda"]
    token = dict(zip(names, tokens(a, *names), strict=True))
    room = room_id_by_name(a, token["admin"], "Chat - Gerência")
    start_after = max([m["id"] for m in history_after(a, token["admin"], room, 0)] or [0])
    posts, edits = 30, 10
    on_a = await ChatClient.connect(a, room, token["admin"])
    receivers = [
        await ChatClient.connect(a, room, token["carlos"]),
        await ChatClient.connect(b, room, token["fernanda"]),
    ]
    path = f"/api/chat/rooms/{room}/messages/"

    async def socket_posts():
        for n in range(posts):
            await on_a.send_message(f"ws {n}")

    def rest_posts():
        for n in range(posts):
            http_call(b, "POST", path, token["maria"], {"message": f"rest {n}"})

    async def collect(client, count: int, kind: str) -> list[dict]:
        frames = []
        while len(frames) < count:
            frame = await client.next_frame(timeout=15)
            assert frame["type"] != "error", frame
            if frame["type"] == kind:
                frames.append(frame)
        return frames

    posted = await asyncio.gather(
        *(collect(r, 2 * posts, "chat.message") for r in receivers),
        socket_posts(),
        asyncio.to_thread(rest_posts),
    )
    stored = [m["id"] for m in history_after(a, token["admin"], room, start_after)]
    assert len(stored) == 2 * posts
    assert [[f["id"] for f in frames] for frames in posted[:2]] == [stored, stored]

    target = next(
        m
        for m in history_after(a, token["admin"], room, start_after)
        if m["user"]["username"] == "admin"
    )

    async def socket_edits():
        for n in range(edits):
            await on_a.ws.send(
                json.dumps({"type": "chat.edit", "message_id": target["id"], "message": f"ws e{n}"})
            )

    def rest_edits(worker: int):
        for n in range(edits):
            text = f"rest{worker} e{n}"
            http_call(b, "PATCH", f"{path}{target['id']}/", token["admin"], {"message": text})

    edited = await asyncio.gather(
        *(collect(r, 4 * edits, "chat.message.updated") for r in receivers),
        socket_edits(),
        *(asyncio.to_thread(rest_edits, worker) for worker in range(3)),
    )
    committed = committed_edits(a, target["id"])
    assert [[f["message"] for f in frames] for frames in edited[:2]] == [committed, committed]
    assert {text.split()[0] for text in committed} == {"ws", "rest0", "rest1", "rest2"}
    for client in [on_a, *receivers]:
        await client.close()


async def test_cluster_chat_post_from_the_shell_reaches_live_sockets_on_every_process(cluster):
    """`manage.py chat_post`, run as a cron job would (its own process, the same Redis and
    PostgreSQL), stores the message and every process's sockets receive it at once."""
    from tests.e2e.server import manage

    a, b = cluster
    admin, maria = tokens(a, "admin", "maria")
    room = room_id_by_name(a, admin, "Chat - Vendas")
    on_a = await ChatClient.connect(a, room, admin)
    on_b = await ChatClient.connect(b, room, maria)
    text = f"do cron {uuid.uuid4()}"

    output = await asyncio.to_thread(manage, a.env, "chat_post", room, "joao", text)

    for client in (on_a, on_b):
        frame = await client.next_message()
        assert (frame["message"], frame["user"]["username"]) == (text, "joao")
    assert f"posted message {frame['id']}" in output
    stored = history_after(a, admin, room, frame["id"] - 1)
    assert [m["message"] for m in stored] == [text]
    await on_a.close()
    await on_b.close()
