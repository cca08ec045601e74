"""chat.realtime.shards agrees with channels-redis on which Redis server carries a name."""

import json
import os
import subprocess
import sys
import uuid

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from chat.realtime import shards
from chat.realtime.delivery import room_group_name, user_group_copies, user_group_name

URLS = ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0", "redis://127.0.0.1:3/0"]
PREFIX = "crm_chat_shards"
ROOM_GROUPS = [room_group_name(uuid.uuid4()) for _ in range(200)]


@pytest.fixture
def three_servers(settings):
    settings.REDIS_URL = " , ".join(URLS) + ","  # spaces and a trailing comma are forgiven
    settings.CHANNEL_LAYER_PREFIX = PREFIX
    settings.REDIS_CHANNEL_LAYER = "pubsub"
    return settings


def pubsub_index(layer, name: str) -> int:
    loop_layer = layer._get_layer()
    return loop_layer._shards.index(loop_layer._get_shard(name))


def test_redis_url_lists_servers_in_order(three_servers):
    assert shards.redis_urls() == URLS
    assert shards.shard_count() == 3


def test_one_url_is_one_shard_and_names_stay_as_they_were(settings):
    settings.REDIS_URL = URLS[0]
    assert shards.shard_count() == 1
    assert {shards.group_shard(group) for group in ROOM_GROUPS} == {0}
    assert user_group_name(7) == "chat.users.7", "one Redis: the group of before"
    assert user_group_copies(7) == ["chat.users.7"]


async def test_group_shard_is_the_pubsub_layers_own(three_servers):
    layer = RedisPubSubChannelLayer(hosts=URLS, prefix=PREFIX)
    for group in ROOM_GROUPS:
        hashed = f"{PREFIX}__group__{group}"  # the Redis channel the layer publishes a group on
        assert shards.group_shard(group) == pubsub_index(layer, hashed)
        assert shards.group_url(group) == URLS[pubsub_index(layer, hashed)]
    assert {shards.group_shard(group) for group in ROOM_GROUPS} == {0, 1, 2}


async def test_group_shard_is_the_core_layers_own(three_servers):
    three_servers.REDIS_CHANNEL_LAYER = "core"
    layer = RedisChannelLayer(hosts=URLS, prefix=PREFIX)
    for group in ROOM_GROUPS:
        assert shards.group_shard(group) == layer.consistent_hash(group)


async def test_a_pubsub_channel_made_for_a_shard_lands_there(three_servers):
    layer = RedisPubSubChannelLayer(hosts=URLS, prefix=PREFIX)
    for shard in range(3):
        for _ in range(20):
            assert pubsub_index(layer, shards.pubsub_channel_on_shard(shard)) == shard


async def test_each_server_has_a_copy_of_a_users_group(three_servers):
    layer = RedisPubSubChannelLayer(hosts=URLS, prefix=PREFIX)
    copies = user_group_copies(42)
    assert len(set(copies)) == 3
    for shard, group in enumerate(copies):
        assert pubsub_index(layer, f"{PREFIX}__group__{group}") == shard
        assert user_group_name(42, shard) == group, "the same name on every process"
        assert user_group_name(42 + 64, shard) == group, "users share their shard's groups"


LAYER_CONFIGS_SCRIPT = """
import json, os, runpy, sys
configs = []
for env in json.loads(sys.argv[1]):
    os.environ.update(env)
    configs.append(runpy.run_module("crm_backend.settings")["CHANNEL_LAYERS"]["default"])
print(json.dumps(configs))
"""


def layer_configs(*envs: dict) -> list[dict]:
    """CHANNEL_LAYERS["default"] as crm_backend.settings builds it from each environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CHANNEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", LAYER_CONFIGS_SCRIPT, json.dumps(envs)],
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


BACKENDS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_each_url_of_redis_url_is_a_host_of_the_layer_with_the_same_options(kind):
    one, two = layer_configs(
        {"REDIS_URL": URLS[0], "REDIS_CHANNEL_LAYER": kind},
        {"REDIS_URL": f"{URLS[0]},{URLS[1]}", "REDIS_CHANNEL_LAYER": kind},
    )
    assert one["BACKEND"] == two["BACKEND"] == BACKENDS[kind]
    (single,), hosts = one["CONFIG"]["hosts"], two["CONFIG"]["hosts"]
    assert [host["address"] for host in hosts] == URLS[:2]
    assert hosts[0] == single, "the first server is configured exactly as a single one"
    assert {**hosts[1], "address": URLS[0]} == single, "and the second with the same options"
    assert single["socket_connect_timeout"] == 2.0 and single["socket_keepalive"] is True


class FakeSocket:
    def __init__(self, redis_shard: int) -> None:
        self.redis_shard = redis_shard
        self.lost = False

    async def layer_lost(self) -> None:
        self.lost = True

    def presence_entry(self):
        return None


async def test_the_watchdog_closes_only_the_sockets_of_the_failed_server(
    three_servers, monkeypatch
):
    from chat.realtime import liveness

    sockets = [FakeSocket(shard) for shard in (0, 1, 2, 1)]
    monkeypatch.setattr(liveness, "_open_sockets", set(sockets))
    watchdog = liveness.LayerWatchdog()
    assert [shard.url for shard in watchdog.shards] == URLS

    async def healthy():
        return None

    async def down():
        return "unavailable (ConnectionError: refused)"

    for shard in watchdog.shards:
        monkeypatch.setattr(shard, "problem", down if shard.index == 1 else healthy)
    await watchdog.check_once()

    assert [socket.lost for socket in sockets] == [False, True, False, True]


@pytest.mark.parametrize("servers", [1, 2])
async def test_a_channel_that_could_not_subscribe_is_not_kept(settings, servers):
    """A refused SUBSCRIBE (its server down) must not leave the channel's queue in the layer:
    every refused handshake, watchdog check and /healthz probe would keep one for ever."""
    from chat.realtime.delivery import CHANNEL_LAYER_ERRORS
    from chat.realtime.fanout import new_channel_on_shard

    settings.REDIS_URL = ",".join(URLS[:servers])  # nothing listens there
    settings.CHANNEL_LAYER_PREFIX = PREFIX
    settings.REDIS_CHANNEL_LAYER = "pubsub"
    hosts = [{"address": url, "socket_connect_timeout": 0.5} for url in URLS[:servers]]
    layer = RedisPubSubChannelLayer(hosts=hosts, prefix=PREFIX)
    try:
        for shard in range(servers):
            with pytest.raises(CHANNEL_LAYER_ERRORS):
                await new_channel_on_shard(layer, shard)
        assert layer._get_layer().channels == {}
    finally:
        await layer.flush()


@pytest.mark.redis
async def test_renewing_presence_keeps_the_rooms_set_from_expiring(settings):
    """The watchdog's renewals must keep a quiet room's set alive (its EXPIRE was only set on
    a join or leave): else it vanishes after CHAT_PRESENCE_TTL_SECONDS + 60 s, and the next
    renewal's ZADD makes it again with no expiry at all, so that it never expires."""
    import redis.asyncio

    from chat.realtime import presence
    from tests.e2e.services import require_shared_redis, unique_prefix

    settings.REDIS_URL = require_shared_redis()
    settings.CHANNEL_LAYER_PREFIX = unique_prefix()
    store, room_id = presence.RedisPresence(), uuid.uuid4()
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    key = presence._key(room_id)
    try:
        await store.change(room_id, 7, "socket.1", join=True)
        await client.expire(key, 2)  # as if the join were long ago
        await store.renew([(room_id, 7, "socket.1")])
        assert await client.ttl(key) > settings.CHAT_PRESENCE_TTL_SECONDS
        await client.delete(key)  # expired meanwhile: made again, with an expiry
        await store.renew([(room_id, 7, "socket.1")])
        assert await client.ttl(key) > settings.CHAT_PRESENCE_TTL_SECONDS
    finally:
        await client.delete(key)
        await client.aclose()
        for pooled in store._clients.values():
            await pooled.aclose()


@pytest.mark.redis
async def test_a_failed_check_does_not_leave_its_channel_in_the_layer(settings, monkeypatch):
    """Each outage (or restart) of a server made its watchdog check drop its channel for a
    new one, leaving the old one's queue in the layer for good."""
    import redis

    from chat.realtime.liveness import ShardCheck
    from tests.e2e.services import require_shared_redis, unique_prefix

    settings.REDIS_URL = require_shared_redis()
    settings.CHANNEL_LAYER_PREFIX = unique_prefix()
    settings.REDIS_CHANNEL_LAYER = "pubsub"
    layer = RedisPubSubChannelLayer(
        hosts=[settings.REDIS_URL], prefix=settings.CHANNEL_LAYER_PREFIX
    )
    check = ShardCheck(layer, 0, settings.REDIS_URL, round_trip=True)
    real_send = layer.send

    async def refused(channel, message):
        raise redis.ConnectionError("refused")

    try:
        assert await check.problem() is None
        monkeypatch.setattr(layer, "send", refused)
        assert (await check.problem()).startswith("unavailable")
        assert layer._get_layer().channels == {}
        monkeypatch.setattr(layer, "send", real_send)
        assert await check.problem() is None
        assert list(layer._get_layer().channels) == [check.channel]
    finally:
        await layer.flush()


@pytest.mark.redis
async def test_a_failed_healthz_shard_probe_leaves_no_channel_behind(settings, monkeypatch):
    import redis
    from channels.layers import get_channel_layer

    from chat.realtime.fanout import pubsub_loop_layer
    from crm_backend import health
    from tests.e2e.services import require_shared_redis, unique_prefix

    urls = [require_shared_redis(), require_shared_redis().rsplit("/", 1)[0] + "/1"]
    settings.REDIS_URL, settings.REDIS_CHANNEL_LAYER = ",".join(urls), "pubsub"
    settings.CHANNEL_LAYER_PREFIX = prefix = unique_prefix()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": urls, "prefix": prefix},
        }
    }
    layer = get_channel_layer()

    async def refused(channel, message):
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(layer, "send", refused)
    try:
        for shard, url in enumerate(urls):
            with pytest.raises(redis.ConnectionError):
                await health._shard_check(shard, url)()
        assert pubsub_loop_layer(layer).channels == {}
    finally:
        await layer.flush()
