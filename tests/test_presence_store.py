"""chat.realtime.presence on the real Redis: many processes' view of who is online."""

import asyncio
import uuid

import pytest

from chat.realtime.presence import RedisPresence
from tests.e2e.services import require_shared_redis, unique_prefix

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_presence(settings):
    settings.REDIS_URL = require_shared_redis()
    settings.CHANNEL_LAYER_PREFIX = unique_prefix()
    return RedisPresence()


async def test_presence_burst_of_joins_waits_for_redis_connections_instead_of_failing(
    redis_presence,
):
    """300 handshakes at once: more than redis-py's default pool of 100, which used to fail
    with "Too many connections"."""
    room_id = uuid.uuid4()
    counts = await asyncio.gather(
        *(redis_presence.change(room_id, n, f"conn-{n}", join=True) for n in range(300))
    )
    assert counts == [1] * 300, "every user is online once"
    assert await asyncio.to_thread(redis_presence.online_user_ids, room_id) == set(range(300))


async def test_presence_user_with_two_sockets_is_online_until_the_last_closes(redis_presence):
    room_id = uuid.uuid4()
    assert await redis_presence.change(room_id, 7, "tab-1", join=True) == 1
    assert await redis_presence.change(room_id, 7, "tab-2", join=True) == 2
    assert await redis_presence.change(room_id, 7, "tab-1", join=False) == 1
    assert await redis_presence.change(room_id, 7, "tab-2", join=False) == 0
