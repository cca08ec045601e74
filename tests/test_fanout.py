"""chat.realtime.fanout: a room costs one layer subscription per process, whatever its size."""

import asyncio

import pytest
import redis
from channels.layers import channel_layers, get_channel_layer

from chat.realtime.delivery import room_group_name
from chat.realtime.fanout import room_hub
from tests import factories
from tests.ws import joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crowd(room):
    """Six more members of `room`."""
    users = [factories.make_user() for _ in range(6)]
    for user in users:
        room.memberships.create(user=user)
    return users


async def _join_all(room, users):
    return [await joined(room_path(room), token=factories.access_token(u)) for u in users]


async def _message_reaches_everyone(sockets, text):
    await sockets[0].send_json_to({"type": "chat.message", "message": text})
    for socket in sockets:
        frame = await socket.receive_json_from()
        assert (frame["type"], frame["message"]) == ("chat.message", text)


async def test_fanout_room_is_one_layer_member_per_process_and_gone_after_the_last(
    room, alice, crowd
):
    sockets = await _join_all(room, [alice, *crowd])
    layer, group = get_channel_layer(), room_group_name(room.pk)

    assert len(layer.groups[group]) == 1, "one subscription for the process, not one per socket"
    assert room_hub().local_socket_count(group) == 7
    await _message_reaches_everyone(sockets, "para todos")

    for socket in sockets:
        await socket.disconnect()
    assert group not in layer.groups
    assert room_hub().local_socket_count(group) == 0


async def test_fanout_a_failing_socket_does_not_cost_the_others_their_message(room, alice, bob):
    second, first = await _join_all(room, [bob, alice])  # bob's socket is written first
    local = room_hub().rooms[room_group_name(room.pk)]
    broken = next(s for s in local.sockets.values() if s.user == bob)

    async def send_fails(*args, **kwargs):
        raise ConnectionError("the peer went away mid-write")

    broken.send = send_fails
    await first.send_json_to({"type": "chat.message", "message": "ainda chega"})
    assert (await first.receive_json_from())["message"] == "ainda chega"
    assert await second.receive_output() == {"type": "websocket.close", "code": 1011}, (
        "a socket that cannot be written to is closed, not left open and deaf"
    )
    await first.send_json_to({"type": "chat.message", "message": "e de novo"})
    assert (await first.receive_json_from())["message"] == "e de novo"


async def test_fanout_rejoin_after_the_room_emptied_gets_a_new_subscription(room, alice, bob):
    (first,) = await _join_all(room, [alice])
    await first.disconnect()
    sockets = await _join_all(room, [alice, bob])
    await _message_reaches_everyone(sockets, "de novo")


@pytest.mark.redis
async def test_fanout_on_redis_pubsub_subscribes_a_room_once_and_leaves_nothing(
    room, alice, bob, crowd, settings
):
    """N sockets of a room in one process: one Redis subscription for the room's group while
    they are open, and none left when they all close, even at once."""
    from tests.e2e.services import require_shared_redis, unique_prefix

    url, prefix = require_shared_redis(), unique_prefix()
    settings.REDIS_URL = ""  # no watchdog in this in-process test
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": prefix},
        }
    }
    channel_layers.backends.clear()
    client = redis.Redis.from_url(url)
    group_channel = f"{prefix}__group__{room_group_name(room.pk)}"
    try:
        sockets = await _join_all(room, [alice, bob, *crowd])
        assert client.pubsub_numsub(group_channel) == [(group_channel.encode(), 1)]
        await _message_reaches_everyone(sockets, "via redis")

        await asyncio.gather(*(socket.disconnect() for socket in sockets))
        assert client.pubsub_numsub(group_channel) == [(group_channel.encode(), 0)]
        assert client.pubsub_channels(f"{prefix}*") == [], "no subscription left behind"
    finally:
        await get_channel_layer().flush()
        client.close()
