"""Two Redis servers shard the layer under two daphne processes on one PostgreSQL database:
rooms on each server chat across processes, and losing one server closes only its rooms."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
import redis
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from tests.e2e.clients import ChatClient, history_after
from tests.e2e.conftest import call, login, ok
from tests.e2e.server import prepared_env, start_server
from tests.e2e.services import SharedPostgresDatabase, ThrowawayRedis, unique_prefix

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

SHARDS = 2


class Cluster:
    def __init__(self, servers, redises, prefix, kind) -> None:
        self.a, self.b = servers
        self.redises = redises
        self.prefix = prefix
        self.kind = kind
        self.rooms: dict[int, str] = {}  # shard -> a room of admin and maria on it
        self.admin, self.maria = login(self.a, "admin"), login(self.a, "maria")

    async def shard_of_room(self, room_id: str) -> int:
        """The index the channel layer itself picks for the room's group."""
        group = f"chat.room.{uuid.UUID(room_id).hex}"
        hosts = [r.url for r in self.redises]
        if self.kind == "core":
            return RedisChannelLayer(hosts=hosts, prefix=self.prefix).consistent_hash(group)
        loop_layer = RedisPubSubChannelLayer(hosts=hosts, prefix=self.prefix)._get_layer()
        shard = loop_layer._get_shard(loop_layer._get_group_channel_name(group))
        return loop_layer._shards.index(shard)


@contextlib.contextmanager
def sharded_cluster(tmp, kind: str):
    """Two daphne processes on one PostgreSQL database and two Redis servers of their own."""
    redises = [ThrowawayRedis(tmp / f"redis-{n}").start() for n in range(SHARDS)]
    database = SharedPostgresDatabase().create()
    prefix = unique_prefix()
    env = prepared_env(
        tmp,
        DATABASE_URL=database.url,
        REDIS_URL=",".join(r.url for r in redises),
        REDIS_CHANNEL_LAYER=kind,
        CHANNEL_LAYER_PREFIX=prefix,
        CHAT_LAYER_CHECK_SECONDS="1",
        CHAT_RATE_LIMIT_BURST="100",
    )
    servers = [start_server(env, tmp / f"daphne-{n}.log") for n in range(2)]
    try:
        yield Cluster(servers, redises, prefix, kind)
    finally:
        for server in servers:
            server.stop()
        for instance in redises:
            instance.stop()
        database.drop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with sharded_cluster(tmp_path_factory.mktemp("shards"), "pubsub") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def core_cluster(tmp_path_factory):
    with sharded_cluster(tmp_path_factory.mktemp("shards-core"), "core") as cluster:
        yield cluster


async def room_on_shard(cluster, shard: int) -> str:
    """A new room of admin and maria whose group the layer puts on Redis `shard`."""
    admin, maria = cluster.admin, cluster.maria
    maria_id = ok(cluster.a, "GET", "/api/auth/me/", maria)["id"]
    while True:
        room = ok(cluster.a, "POST", "/api/chat/rooms/", admin, {"name": f"s-{uuid.uuid4()}"})
        if await cluster.shard_of_room(room["id"]) == shard:
            members = f"/api/chat/rooms/{room['id']}/members/"
            ok(cluster.a, "POST", members, admin, {"user_id": maria_id})
            return room["id"]


async def rooms_of(cluster) -> dict[int, str]:
    """A room of admin and maria on each Redis server."""
    for shard in range(SHARDS):
        if shard not in cluster.rooms:
            cluster.rooms[shard] = await room_on_shard(cluster, shard)
    return cluster.rooms


async def exchange(sender: ChatClient, receiver: ChatClient, text: str) -> dict:
    """`text` from sender to receiver (on the other process); the stored message."""
    await sender.send_message(text)
    acknowledged = await sender.next_message()
    received = await receiver.next_message()
    assert received["message"] == acknowledged["message"] == text
    assert received["id"] == acknowledged["id"]
    return received


async def connect_when_back(server, room: str, token: str, timeout: float = 15) -> ChatClient:
    """Reconnect as a client does: retry while the server still refuses with 1013."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await ChatClient.connect(server, room, token)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


@pytest.mark.parametrize("kind", ["pubsub", "core"])
async def test_rooms_on_each_redis_chat_across_processes_with_presence_and_notifications(
    request, kind
):
    cluster = request.getfixturevalue("cluster" if kind == "pubsub" else "core_cluster")
    admin, maria, rooms = cluster.admin, cluster.maria, await rooms_of(cluster)
    for shard, room in rooms.items():
        on_a = await ChatClient.connect(cluster.a, room, admin)
        on_b = await ChatClient.connect(cluster.b, room, maria)
        await exchange(on_a, on_b, f"A → B on Redis {shard}")
        await exchange(on_b, on_a, f"B → A on Redis {shard}")

        online = ok(cluster.b, "GET", f"/api/chat/rooms/{room}/presence/", admin)["online"]
        assert {user["username"] for user in online} == {"admin", "maria"}
        key = f"{cluster.prefix}:presence:{uuid.UUID(room).hex}"
        holders = [redis.Redis(port=r.port).exists(key) for r in cluster.redises]
        assert holders == [int(n == shard) for n in range(SHARDS)], "beside the room's group"

        # maria's socket is in this room on B; she is mentioned in the room on the other Redis.
        other_room = rooms[1 - shard]
        ok(
            cluster.a,
            "POST",
            f"/api/chat/rooms/{other_room}/messages/",
            admin,
            {"message": "@maria"},
        )
        frame = await on_b.next_frame()
        assert frame["type"] == "notification", frame
        assert frame["notification"]["room"]["id"] == other_room
        await on_a.close()
        await on_b.close()


async def test_losing_one_redis_closes_only_its_rooms_and_they_recover_after_it_returns(
    cluster,
):
    """On the pub/sub layer (the default): RedisChannelLayer ties each process to one more
    server as well, the one its channels' list hashes to (docs/scaling.md)."""
    admin, maria, rooms = cluster.admin, cluster.maria, await rooms_of(cluster)
    lost, kept = 1, 0
    kept_a = await ChatClient.connect(cluster.a, rooms[kept], admin)
    kept_b = await ChatClient.connect(cluster.b, rooms[kept], maria)
    lost_a = await ChatClient.connect(cluster.a, rooms[lost], admin)
    lost_b = await ChatClient.connect(cluster.b, rooms[lost], maria)
    last_seen = (await exchange(lost_a, lost_b, "antes da queda"))["id"]

    cluster.redises[lost].stop()
    for client in (lost_a, lost_b):  # both processes' watchdogs close the lost room's sockets
        error, code = await client.closed_with(timeout=10)
        assert (error["code"], code) == ("service_unavailable", 1013)
    await exchange(kept_a, kept_b, "a outra sala continua")
    await exchange(kept_b, kept_a, "nos dois sentidos")
    for _ in range(3):  # new rooms on the kept Redis: each process subscribes them afresh
        fresh = await room_on_shard(cluster, kept)
        first_a = await ChatClient.connect(cluster.a, fresh, admin)
        first_b = await ChatClient.connect(cluster.b, fresh, maria)
        await exchange(first_a, first_b, "sala nova durante a queda da outra")
        await first_a.close()
        await first_b.close()
    mention = "@maria, a sala dela continua"
    ok(cluster.a, "POST", f"/api/chat/rooms/{rooms[kept]}/messages/", admin, {"message": mention})
    assert (await kept_a.next_message())["message"] == mention
    frames = [await kept_b.next_frame(), await kept_b.next_frame()]
    assert {frame["type"] for frame in frames} == {"chat.message", "notification"}, frames
    status, _ = call(
        cluster.a,
        "POST",
        f"/api/chat/rooms/{rooms[lost]}/messages/",
        admin,
        {"message": "na queda"},
    )
    assert status == 201, "stored while its Redis is down; announced to nobody"
    error, code = await ChatClient.refused(cluster.b, rooms[lost], maria)
    assert (error["code"], code) == ("service_unavailable", 1013), "refused, not left deaf"
    healthz = ok(cluster.b, "GET", "/healthz", admin)
    assert (healthz["channel_layer"], healthz["redis_shards"]) == ("degraded", ["ok", "down"])

    cluster.redises[lost].start()  # same port, memory wiped
    back_b = await connect_when_back(cluster.b, rooms[lost], maria)
    recovered = history_after(cluster.b, maria, rooms[lost], last_seen)
    assert [m["message"] for m in recovered] == ["na queda"], "after= recovers, no gap"
    back_a = await connect_when_back(cluster.a, rooms[lost], admin)
    await asyncio.sleep(2.5)  # two watchdog checks: the restart closes nothing that rejoined
    await exchange(back_a, back_b, "de volta")
    await exchange(kept_a, kept_b, "sem nunca cair")
    for client in (kept_a, kept_b, back_a, back_b):
        await client.close()
