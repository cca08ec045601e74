"""chat.realtime.layers.LocalChannelLayer: fan-out without copies or tasks, and no silent drops."""

import asyncio

import pytest
import redis
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from chat.realtime.delivery import broadcast_event, room_group_name
from chat.realtime.layers import OVERFLOW_EVENT, LocalChannelLayer
from tests import factories
from tests.ws import joined, room_path


async def test_layer_group_send_reaches_every_member_in_order():
    layer = LocalChannelLayer(capacity=10)
    first, second = await layer.new_channel(), await layer.new_channel()
    assert first != second
    for channel in (first, second):
        await layer.group_add("room", channel)
    for number in range(3):
        await layer.group_send("room", {"type": "chat.broadcast", "n": number})
    for channel in (first, second):
        assert [(await layer.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]


async def test_layer_group_discard_stops_delivery():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await layer.group_discard("room", channel)
    await layer.group_send("room", {"type": "x"})
    assert channel not in layer.channels


async def test_layer_receiver_that_falls_behind_gets_an_overflow_notice_not_silence():
    layer = LocalChannelLayer(capacity=3)
    slow, fast = await layer.new_channel(), await layer.new_channel()
    for channel in (slow, fast):
        await layer.group_add("room", channel)

    for number in range(3):
        await layer.group_send("room", {"type": "m", "n": number})
        await layer.receive(fast)
    for number in range(3, 6):
        await layer.group_send("room", {"type": "m", "n": number})
        await layer.receive(fast)

    received = [await layer.receive(slow) for _ in range(4)]
    assert [m.get("n") for m in received[:3]] == [0, 1, 2]
    assert received[3] == OVERFLOW_EVENT, "the fourth thing it hears is that it fell behind"
    assert slow not in layer.groups["room"]
    assert fast in layer.groups["room"]


async def test_layer_send_to_a_full_channel_raises_channel_full():
    layer = LocalChannelLayer(capacity=1)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "a"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "b"})


@pytest.mark.django_db(transaction=True)
async def test_socket_that_falls_behind_is_closed_with_1013(room, alice, settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "chat.realtime.layers.LocalChannelLayer", "CONFIG": {"capacity": 5}}
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    layer = get_channel_layer()
    for number in range(20):  # no await yields to the consumer in between: it cannot keep up
        await layer.group_send(room_group_name(room.pk), broadcast_event(f'{{"n": {number}}}'))

    frames = []
    while (frame := await communicator.receive_json_from()).get("type") != "error":
        frames.append(frame)
    assert [f["n"] for f in frames] == list(range(len(frames))), "in order, no gap"
    assert 0 < len(frames) <= 5, "at most `capacity` messages, then the notice"
    assert frame["code"] == "service_unavailable"
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 1013}


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_pubsub_socket_that_falls_behind_is_closed_with_1013(room, alice, settings):
    """RedisPubSubChannelLayer queues without limit; the consumer closes a socket whose backlog
    passes CHANNEL_LAYER_CAPACITY instead of letting memory grow."""
    from channels.layers import channel_layers

    from chat.realtime.consumers.room import ChatConsumer
    from tests.e2e.services import require_shared_redis, unique_prefix

    settings.REDIS_URL = ""  # no watchdog in this in-process test
    settings.CHANNEL_LAYER_CAPACITY = 5
    prefix = unique_prefix()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [require_shared_redis()], "prefix": prefix},
        }
    }
    channel_layers.backends.clear()
    slow_send = ChatConsumer.send

    async def send_slowly(self, *args, **kwargs):  # a client on a slow link
        await asyncio.sleep(0.02)
        await slow_send(self, *args, **kwargs)

    ChatConsumer.send = send_slowly
    try:
        communicator = await joined(room_path(room), token=factories.access_token(alice))
        layer = get_channel_layer()
        for number in range(60):
            await layer.group_send(room_group_name(room.pk), broadcast_event(f'{{"n": {number}}}'))
        frames = []
        while (frame := await communicator.receive_json_from(timeout=5)).get("type") != "error":
            frames.append(frame)
        assert [f["n"] for f in frames] == list(range(len(frames))), "in order, no gap"
        assert len(frames) < 60
        assert frame["code"] == "service_unavailable"
        assert await communicator.receive_output(timeout=5) == {
            "type": "websocket.close",
            "code": 1013,
        }
        await communicator.disconnect()
        client = redis.Redis.from_url(require_shared_redis())
        try:
            for _ in range(50):  # the room's channel and group are released, not leaked
                if not client.pubsub_channels(f"{prefix}*"):
                    break
                await asyncio.sleep(0.1)
            assert client.pubsub_channels(f"{prefix}*") == []
        finally:
            client.close()
        assert not get_channel_layer()._get_layer().channels, "no queue left behind"
    finally:
        ChatConsumer.send = slow_send
        await get_channel_layer().flush()
