"""GET /healthz: is the database answering, and does a message make it through the channel layer?"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse

from chat.realtime.fanout import new_channel_on_shard, pubsub_loop_layer, release_pubsub_channel
from chat.realtime.shards import redis_urls

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    if pubsub_loop_layer(layer) is not None:  # a probe refused by a Redis down keeps no queue
        return await _pubsub_round_trip(layer, 0)
    channel = await layer.new_channel("healthz.")
    await layer.send(channel, {"type": "health.check"})
    await layer.receive(channel)


def _shard_check(shard: int, url: str):
    """A round trip through the pub/sub layer's connection to one Redis server; a PING on
    RedisChannelLayer, whose direct sends channels-redis 4.3.0 misroutes over several hosts."""

    async def round_trip() -> None:
        layer = get_channel_layer()
        if pubsub_loop_layer(layer) is None:
            return await _ping(url)
        return await _pubsub_round_trip(layer, shard)

    return round_trip


async def _pubsub_round_trip(layer, shard: int) -> None:
    channel = await new_channel_on_shard(layer, shard)
    try:
        await layer.send(channel, {"type": "health.check"})
        await layer.receive(channel)
    except BaseException:  # a PUBLISH refused: the layer would keep the channel's queue
        pubsub_loop_layer(layer).channels.pop(channel, None)
        raise
    await release_pubsub_channel(layer, channel)  # or every probe leaves a subscription


async def _ping(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _channel_layer_state() -> dict:
    """The layer is ok or down; with several Redis servers, degraded while some answer (the
    others' rooms are closed on every process alike: taking this one out of the balancer
    would not help), with each server's state."""
    urls = redis_urls()
    if len(urls) < 2:
        return {"channel_layer": await _check("channel_layer", _channel_layer_round_trip)}
    states = await asyncio.gather(
        *(_check(f"redis {n}", _shard_check(n, url)) for n, url in enumerate(urls))
    )
    overall = "ok" if "down" not in states else "down" if "ok" not in states else "degraded"
    return {"channel_layer": overall, "redis_shards": states}


async def _check(name: str, check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # any failure is "down"; the log says which and why
        logger.warning("healthz: %s is down: %s: %s", name, type(error).__name__, error)
        return "down"
    return "ok"


async def healthz(request):
    checks = {
        # Not on the request's thread (thread_sensitive=False): a hung database must not hold
        # the response past CHECK_TIMEOUT_SECONDS while the request thread waits for it.
        "database": await _check(
            "database", database_sync_to_async(_database_answers, thread_sensitive=False)
        ),
        **await _channel_layer_state(),
    }
    healthy = checks["database"] == "ok" and checks["channel_layer"] in ("ok", "degraded")
    body = {"status": "ok" if healthy else "unavailable", **checks}
    return JsonResponse(body, status=200 if healthy else 503)
