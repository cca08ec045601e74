"""Room fan-out inside one server process: one channel-layer delivery per message per process.

Channels' usual pattern makes every socket a member of its room's layer group, so a message to
a room of N sockets costs N layer deliveries, N queue wake-ups and N consumer dispatches (each
with Channels' `aclose_old_connections()` thread round trip): that was 30-60 % of the server's
CPU in the benchmark (docs/performance.md). Here each process subscribes to a room's group
ONCE, with one channel per room, and one reader task writes every event to the room's local
sockets in arrival order. On Redis a message is one PUBLISH, received once by each process.

Nothing is dropped silently: when the process itself cannot keep up (the room's channel falls
CHANNEL_LAYER_CAPACITY events behind), every local socket of the room is closed with
`service_unavailable` / 1013, and clients recover with `after=` (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from chat.observability import metrics
from chat.realtime.layers import OVERFLOW_EVENT
from chat.realtime.shards import group_shard, pubsub_channel_on_shard

logger = logging.getLogger(__name__)

YIELD_EVERY_EVENTS = 100


class RoomSocket(Protocol):
    channel_name: str
    closing: bool

    async def room_event(self, event: dict) -> bool | None:
        """Truthy when a frame was written to the socket."""

    async def layer_overflow(self, event: dict) -> None: ...


class LocalRoom:
    """One room's subscription in this process: its channel, reader and local sockets."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.channel: str | None = None
        self.sockets: dict[str, RoomSocket] = {}  # channel name -> socket, in join order
        self.subscribed: asyncio.Task | None = None
        self.reader: asyncio.Task | None = None
        self.closing = False  # being torn down: deliver nothing more


class RoomHub:
    """This process's (event loop's) rooms: subscribes each once and fans events out locally."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.rooms: dict[str, LocalRoom] = {}

    async def join(self, group: str, socket: RoomSocket) -> None:
        """Add a socket to its room; the first socket of a room subscribes this process to it."""
        room = self.rooms.get(group)
        if room is None:
            room = self.rooms[group] = LocalRoom(group)
            room.subscribed = asyncio.get_running_loop().create_task(self._subscribe(room))
        try:
            await asyncio.shield(room.subscribed)
        except Exception:
            if self.rooms.get(group) is room:
                del self.rooms[group]
            raise
        room.sockets[socket.channel_name] = socket

    async def leave(self, group: str, socket: RoomSocket) -> None:
        """Remove a socket; the last socket of a room unsubscribes this process from it."""
        room = self.rooms.get(group)
        if room is None or room.sockets.pop(socket.channel_name, None) is None:
            return
        if not room.sockets:
            await self._unsubscribe(room)

    def local_socket_count(self, group: str) -> int:
        room = self.rooms.get(group)
        return len(room.sockets) if room else 0

    async def resubscribe(self, failed_shards: frozenset[int] = frozenset()) -> None:
        """Add every room channel to its group again (RedisChannelLayer forgets by expiry),
        but on the Redis servers that just failed (their rooms' sockets are being closed)."""
        for room in list(self.rooms.values()):
            if room.channel is None or room.closing or group_shard(room.group) in failed_shards:
                continue
            await self.layer.group_add(room.group, room.channel)
            if self.rooms.get(room.group) is not room:  # torn down meanwhile: undo
                await self._leave_group(room)

    async def _subscribe(self, room: LocalRoom) -> None:
        # The default prefix matters: RedisChannelLayer reads a process's channels from one
        # list per prefix, so a room channel with its own prefix would wait behind the others.
        room.channel = await new_channel_on_shard(self.layer, group_shard(room.group))
        # Receive before joining: cancelling the reader is what makes RedisPubSubChannelLayer
        # drop a channel's queue and subscription, so every way out below can release it.
        room.reader = asyncio.get_running_loop().create_task(self._read(room))
        try:
            await self.layer.group_add(room.group, room.channel)
        except BaseException:
            await self._release(room)
            raise

    async def _unsubscribe(self, room: LocalRoom) -> None:
        if self.rooms.get(room.group) is room:
            del self.rooms[room.group]
        await self._release(room)

    async def _release(self, room: LocalRoom) -> None:
        """Give the room's channel back to the layer: stop reading it, take it out of the group."""
        room.closing = True
        await self._leave_group(room)
        reader = room.reader
        if reader is None or reader is asyncio.current_task():
            return
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        if room.channel in getattr(self._pubsub_layer(), "channels", ()):
            await self._cancel_a_receive(room.channel)

    async def _cancel_a_receive(self, channel: str) -> None:
        """RedisPubSubChannelLayer frees a channel (queue, SUBSCRIBE) only when a receive on
        it is cancelled; the reader may have been cancelled while writing to a socket."""
        for _ in range(settings.CHANNEL_LAYER_CAPACITY + 1):
            receiving = asyncio.ensure_future(self.layer.receive(channel))
            await asyncio.sleep(0)
            if not receiving.done():
                receiving.cancel()
                await asyncio.gather(receiving, return_exceptions=True)
                return
            # an event still queued for the closed room: nobody is left to read it

    def _pubsub_layer(self):
        return pubsub_loop_layer(self.layer)

    async def _leave_group(self, room: LocalRoom) -> None:
        try:
            await self.layer.group_discard(room.group, room.channel)
        except Exception:  # the layer is down; its watchdog closes the sockets anyway
            logger.warning("could not unsubscribe from %s", room.group)

    async def _read(self, room: LocalRoom) -> None:
        in_a_row = 0
        while True:
            try:
                event = await self.layer.receive(room.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("lost the channel layer while reading %s", room.group)
                return await self._close_room(room, "lost its channel layer")
            if room.closing:
                continue  # being closed: the events go nowhere, the reader waits to be cancelled
            if event is OVERFLOW_EVENT or self._backlog(room) > settings.CHANNEL_LAYER_CAPACITY:
                # Closing from now: events already queued come without suspending this loop,
                # before the task below runs; each must not close (and count) the room again.
                room.closing = True
                metrics.slow_socket_closes.labels(metrics.ROOM_BACKLOG).inc(len(room.sockets))
                # In its own task: it cancels this reader, which releases the channel.
                asyncio.get_running_loop().create_task(
                    self._close_room(room, "fell too far behind")
                )
                continue
            await self._deliver(room, event)
            # A queue with events ready never suspends: let the server write what was sent
            # (and other rooms read) now and then.
            in_a_row += 1
            if in_a_row >= YIELD_EVERY_EVENTS:
                in_a_row = 0
                await asyncio.sleep(0)

    async def _deliver(self, room: LocalRoom, event: dict) -> None:
        written = 0  # counted here, recorded once per event: no metric call per socket
        for socket in tuple(room.sockets.values()):
            if socket.closing:
                continue
            try:
                if await socket.room_event(event):
                    written += 1
            except Exception:  # one broken socket must not cost the others their message
                logger.exception("could not hand %s to %s", event.get("type"), socket.channel_name)
        metrics.fanout_written(written, event.get("stored_at"))

    async def _close_room(self, room: LocalRoom, why: str) -> None:
        """This process cannot deliver the room's events: close its sockets (1013), never drop."""
        if self.rooms.get(room.group) is room:
            del self.rooms[room.group]  # a socket that joins from now on gets a new subscription
        room.closing = True
        sockets = tuple(room.sockets.values())
        logger.error("room %s %s: closing %d sockets with 1013", room.group, why, len(sockets))
        await asyncio.gather(
            *(socket.layer_overflow({"type": "layer.overflow"}) for socket in sockets),
            return_exceptions=True,
        )
        await self._release(room)

    def _backlog(self, room: LocalRoom) -> int:
        """Events waiting for this room in the Redis layers' local buffers.

        RedisPubSubChannelLayer queues without limit and RedisChannelLayer drops the oldest
        when its buffer is full: on both, a room that falls CHANNEL_LAYER_CAPACITY behind is
        closed before anything is lost. LocalChannelLayer sends OVERFLOW_EVENT instead.
        """
        pubsub = self._pubsub_layer()
        if pubsub is not None:
            queue = pubsub.channels.get(room.channel)
        else:  # RedisChannelLayer; absent elsewhere
            queue = getattr(self.layer, "receive_buffer", {}).get(room.channel)
        return queue.qsize() if queue is not None else 0


def pubsub_loop_layer(layer):
    """RedisPubSubChannelLayer's layer of the running loop; None for the other layers."""
    loop_layer = getattr(layer, "_get_layer", None)
    return loop_layer() if loop_layer is not None else None


async def new_channel_on_shard(layer, shard: int) -> str:
    """A new channel of this process that the pub/sub layer subscribes on Redis server `shard`.

    `new_channel` names it at random, hence on a random server: a room's channel there would
    tie the room to two servers, and its join would fail while either is down. With one
    server it is named as `new_channel` names one; on another layer it is `new_channel` itself.
    """
    pubsub = pubsub_loop_layer(layer)
    if pubsub is None:
        return await layer.new_channel()
    channel = pubsub_channel_on_shard(shard)
    try:
        await pubsub._subscribe_to_channel(channel)  # what new_channel does with its name
    except BaseException:
        # The layer queues the channel before its SUBSCRIBE: a refused one (server down) would
        # keep a queue for every refused handshake, watchdog check and /healthz probe.
        pubsub.channels.pop(channel, None)
        raise
    return channel


async def release_pubsub_channel(layer, channel: str) -> None:
    """Free a channel whose last receive returned: RedisPubSubChannelLayer keeps its queue and
    its Redis subscription until a receive on it is cancelled. Nothing on the other layers."""
    if pubsub_loop_layer(layer) is None:
        return
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    receiving.cancel()
    await asyncio.gather(receiving, return_exceptions=True)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def room_hub() -> RoomHub:
    """The hub of the running event loop for the current channel layer."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = RoomHub(layer)
    return hub
