"""GET /healthz: is the database answering, and does a message make it through the channel layer?"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("healthz.")
    await layer.send(channel, {"type": "health.check"})
    await layer.receive(channel)


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
        "channel_layer": await _check("channel_layer", _channel_layer_round_trip),
    }
    healthy = all(state == "ok" for state in checks.values())
    body = {"status": "ok" if healthy else "unavailable", **checks}
    return JsonResponse(body, status=200 if healthy else 503)
