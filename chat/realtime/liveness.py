"""Keeps a server process's open sockets honest about the channel layer.

A socket that stays open while it can no longer receive its room's messages is worse than a
closed one: the client believes it is live. One watchdog task per process (per event loop)
checks the channel layer every CHAT_LAYER_CHECK_SECONDS with a real round trip and, on Redis,
watches the server's run_id. When the layer fails or Redis restarted (its memory wiped),
the chat sockets that depended on it are closed with `service_unavailable` / 1013: clients
reconnect and recover what they missed with `after=`. With several Redis servers in REDIS_URL
each is checked on its own, and a socket depends only on the server of its room's group
(`redis_shard`, chat.realtime.shards): one server lost closes the sockets of its rooms, the
other rooms keep chatting. The check costs one round trip per server per check, nothing per
message. On RedisChannelLayer the same loop
refreshes the process's room subscriptions (chat.realtime.fanout), so a long-lived socket never
falls out of its room by group expiry.

It also closes every socket with 1001 when daphne shuts down (SIGTERM).

On every layer, a second task per process checks accounts every CHAT_ACCOUNT_CHECK_SECONDS:
a user deactivated or removed from a room where no event reaches this process (`manage.py
shell`, a cron job, SQL, another process on the in-memory layer) has its sockets closed
within that time, as the admin's event does at once (chat.domain.signals). One query per check
(chat.domain.access.refused_connections), and one more when sockets opened with API keys are
open (a key revoked where its event could not reach); nothing runs per message.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from typing import Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from chat.observability import metrics
from chat.realtime.fanout import new_channel_on_shard, pubsub_loop_layer, room_hub
from chat.realtime.shards import name_shard, redis_urls

logger = logging.getLogger(__name__)

ROUND_TRIP_TIMEOUT_SECONDS = 3.0


class LiveSocket(Protocol):
    def room_type(self) -> str: ...

    async def layer_lost(self) -> None: ...

    async def going_away(self) -> None: ...


_open_sockets: weakref.WeakSet = weakref.WeakSet()
# The open-sockets gauge's label each socket was counted under, to take it off at close.
_counted_as: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_watchdogs: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
_account_checks: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def socket_opened(socket: LiveSocket) -> None:
    _open_sockets.add(socket)
    room_type = _counted_as[socket] = socket.room_type()
    metrics.socket_opened(room_type)
    _ensure_account_check()
    if settings.REDIS_URL:
        _ensure_watchdog()


def socket_closed(socket: LiveSocket) -> None:
    _open_sockets.discard(socket)
    room_type = _counted_as.pop(socket, None)
    if room_type is not None:
        metrics.socket_closed(room_type)


def _ensure_watchdog() -> None:
    loop = asyncio.get_running_loop()
    task = _watchdogs.get(loop)
    if task is None or task.done():
        _watchdogs[loop] = loop.create_task(LayerWatchdog().run())


def _ensure_account_check() -> None:
    loop = asyncio.get_running_loop()
    task = _account_checks.get(loop)
    if task is None or task.done():
        _account_checks[loop] = loop.create_task(check_accounts_while_sockets_open())


async def check_accounts_while_sockets_open() -> None:
    """Every CHAT_ACCOUNT_CHECK_SECONDS; ends when the process has no socket left (the next
    socket starts it again)."""
    while _open_sockets:
        await asyncio.sleep(settings.CHAT_ACCOUNT_CHECK_SECONDS)
        sample_send_buffers()
        try:
            await close_refused_sockets()
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is down: sockets stay, the next check retries
            logger.exception("account check failed")
    sample_send_buffers()  # no socket left: the gauges must not keep the last sockets' bytes


def sample_send_buffers() -> None:
    """The buffered-bytes gauges, sampled here (every CHAT_ACCOUNT_CHECK_SECONDS), not per
    frame: what the sockets' transports hold (daphne only; chat.adapters.backpressure)."""
    queued = [
        backlog.queued_bytes()
        for socket in list(_open_sockets)
        if (backlog := getattr(socket, "send_backlog", None)) is not None
    ]
    metrics.socket_buffered_bytes.set(sum(queued))
    metrics.socket_buffered_bytes_max.set(max(queued, default=0))


async def close_refused_sockets() -> None:
    """Close the sockets whose user or membership the access rule no longer admits."""
    from channels.db import database_sync_to_async

    from chat.domain.access import refused_connections
    from chat.realtime.consumers.room import ACCESS_LOST_REJECTIONS

    sockets: dict[tuple, list] = {}
    for socket in list(_open_sockets):
        entry = _presence_entry(socket)  # (room, user, socket id) of an open member socket
        if entry is not None:
            sockets.setdefault((entry[1], entry[0]), []).append(socket)
    if not sockets:
        return
    refused = await database_sync_to_async(refused_connections)(set(sockets))
    closing = [
        socket.reject(ACCESS_LOST_REJECTIONS[reason])
        for pair, reason in refused.items()
        for socket in sockets[pair]
    ]
    closing += await _revoked_key_closes([s for group in sockets.values() for s in group])
    if closing:
        logger.info("account check: closing %d sockets", len(closing))
        await asyncio.gather(*closing, return_exceptions=True)


async def _revoked_key_closes(sockets: list) -> list:
    """Closes of the sockets whose API key was revoked where no event reached this process
    (`manage.py revoke_api_key` on the in-memory layer): one more query, only when sockets
    opened with keys are open."""
    from channels.db import database_sync_to_async

    from apikeys.keys import revoked_key_ids
    from chat.protocol import Rejection

    by_key: dict[int, list] = {}
    for socket in sockets:
        key_id = getattr(socket, "api_key_id", lambda: None)()
        if key_id is not None:
            by_key.setdefault(key_id, []).append(socket)
    if not by_key:
        return []
    revoked = await database_sync_to_async(revoked_key_ids)(set(by_key))
    return [s.reject(Rejection.API_KEY_REVOKED) for key in revoked for s in by_key[key]]


class ShardCheck:
    """One Redis server of the layer: a real round trip through the layer, and its run_id."""

    def __init__(self, layer, index: int, url: str, *, round_trip: bool) -> None:
        self.layer = layer
        self.index = index
        self.url = url
        self.checks_round_trip = round_trip
        self.channel: str | None = None
        self.redis_run_id: str | None = None

    async def start(self) -> None:
        # The run_id the first socket opened under: a restart before the first check must
        # still count as one (its subscriptions and groups are gone).
        try:
            self.redis_run_id = await asyncio.wait_for(
                redis_run_id(self.url), ROUND_TRIP_TIMEOUT_SECONDS
            )
        except Exception:  # down already: the first check says so
            logger.warning("channel layer watchdog: Redis %d unreachable at start", self.index)

    async def problem(self) -> str | None:
        try:
            if self.checks_round_trip:
                with metrics.layer_round_trip.time():
                    await asyncio.wait_for(self.round_trip(), ROUND_TRIP_TIMEOUT_SECONDS)
            run_id = await asyncio.wait_for(redis_run_id(self.url), ROUND_TRIP_TIMEOUT_SECONDS)
        except Exception as error:
            # Its sockets are closed now, so its next run_id is a fresh start, not a restart
            # (which would close the sockets that joined it since it came back).
            self.forget_channel()
            self.redis_run_id = None
            return f"unavailable ({type(error).__name__}: {error})"
        restarted = self.redis_run_id is not None and run_id != self.redis_run_id
        self.redis_run_id = run_id
        if restarted:
            self.forget_channel()
            return "restarted (Redis run_id changed; its groups are gone)"
        return None

    def forget_channel(self) -> None:
        """The next check makes a new channel: the pub/sub layer would keep this one's queue
        for good (it frees a channel only when a receive on it is cancelled)."""
        channel, self.channel = self.channel, None
        pubsub = pubsub_loop_layer(self.layer)
        if channel is not None and pubsub is not None:
            pubsub.channels.pop(channel, None)

    async def round_trip(self) -> None:
        if self.channel is None:
            # The default prefix matters: RedisChannelLayer reads all of a process's channels
            # from one list per prefix, so a custom prefix would wait behind the consumers'.
            self.channel = await new_channel_on_shard(self.layer, self.index)
        await self.layer.send(self.channel, {"type": "liveness.check"})
        await self.layer.receive(self.channel)


class LayerWatchdog:
    """Checks each Redis server of the layer; a failed one closes the sockets of its rooms."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        urls = redis_urls()
        # RedisChannelLayer (channels-redis 4.3.0) hashes a direct send to a process channel
        # by the full name but reads it by the process's part: with several servers the round
        # trip may land where nobody reads, so there each server is checked by its run_id.
        round_trip = len(urls) == 1 or pubsub_loop_layer(self.layer) is not None
        self.shards = [
            ShardCheck(self.layer, index, url, round_trip=round_trip)
            for index, url in enumerate(urls)
        ]

    async def run(self) -> None:
        await asyncio.gather(*(shard.start() for shard in self.shards))
        while True:
            await asyncio.sleep(settings.CHAT_LAYER_CHECK_SECONDS)
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("channel layer watchdog failed")

    async def check_once(self) -> None:
        failed = await self.failed_shards()
        if failed:
            await self.close_sockets_of(failed)
        if len(failed) < len(self.shards):
            await self.refresh_groups(failed)
            await self.renew_presence(failed)

    async def failed_shards(self) -> frozenset[int]:
        problems = await asyncio.gather(*(shard.problem() for shard in self.shards))
        failed = set()
        for shard, problem in zip(self.shards, problems, strict=True):
            if problem is not None:
                logger.error("channel layer shard %d %s", shard.index, problem)
                metrics.watchdog_failures.labels(problem.split(" ", 1)[0]).inc()
                failed.add(shard.index)
        if self.process_inbox_shard() in failed:
            return frozenset(range(len(self.shards)))  # every room of this process is deaf
        return frozenset(failed)

    def process_inbox_shard(self) -> int | None:
        """RedisChannelLayer delivers to all of a process's channels through one list, on the
        server its name hashes to: that server failing deafens every room of the process."""
        client_prefix = getattr(self.layer, "client_prefix", None)
        if client_prefix is None or len(self.shards) == 1:
            return None
        return name_shard(f"specific.{client_prefix}!", len(self.shards))

    async def close_sockets_of(self, failed: frozenset[int]) -> None:
        sockets = [s for s in list(_open_sockets) if getattr(s, "redis_shard", 0) in failed]
        logger.error(
            "channel layer shard(s) %s failed: closing %d sockets with 1013",
            sorted(failed),
            len(sockets),
        )
        await asyncio.gather(*(socket.layer_lost() for socket in sockets), return_exceptions=True)

    async def refresh_groups(self, failed: frozenset[int]) -> None:
        """RedisChannelLayer forgets group members after group_expiry: subscribe rooms again."""
        if not hasattr(self.layer, "group_expiry"):
            return
        await room_hub().resubscribe(failed)

    async def renew_presence(self, failed: frozenset[int]) -> None:
        """Keep this process's users online; announce users whose process died as offline."""
        from chat.realtime.presence import presence_store, room_shard

        entries = [
            entry
            for socket in list(_open_sockets)
            if (entry := _presence_entry(socket)) and room_shard(entry[0]) not in failed
        ]
        store = presence_store()
        await store.renew(entries)
        for room_id in {room_id for room_id, _, _ in entries}:
            gone = await store.expired_users(room_id)
            if gone:
                await announce_offline(self.layer, room_id, gone)


def _presence_entry(socket) -> tuple | None:
    entry = getattr(socket, "presence_entry", None)
    return entry() if entry else None


async def announce_offline(layer, room_id, user_ids: set[int]) -> None:
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    from chat import protocol
    from chat.realtime.delivery import broadcast_event, room_group_name

    users = await database_sync_to_async(
        lambda: list(
            get_user_model().objects.filter(pk__in=user_ids).values("id", "username", "is_bot")
        )
    )()
    for user in users:
        logger.info("presence expired: user=%s room=%s", user["username"], room_id)
        who = protocol.user_payload(user["id"], user["username"], user["is_bot"])
        frame = protocol.presence_frame(room_id=room_id, user=who, online=False)
        await layer.group_send(room_group_name(room_id), broadcast_event(frame))


async def redis_run_id(url: str | None = None) -> str | None:
    """A Redis server's run_id (the first of REDIS_URL's by default): it changes when Redis
    restarts and loses its state."""
    url = url or next(iter(redis_urls()), None)
    if not url:
        return None
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return (await client.info("server"))["run_id"]
    finally:
        await client.aclose()


def close_all_going_away():
    """Before daphne stops (SIGTERM): close every socket with 1001 so clients reconnect."""
    sockets = list(_open_sockets)
    if not sockets:
        return None
    logger.info("shutting down: closing %d sockets with 1001", len(sockets))

    async def close_them() -> None:
        await asyncio.gather(*(s.going_away() for s in sockets), return_exceptions=True)
        await asyncio.sleep(0.2)  # let the close frames leave before the reactor stops

    from twisted.internet import defer

    return defer.Deferred.fromFuture(asyncio.ensure_future(close_them()))


def install_shutdown_hook() -> None:
    """Register close_all_going_away with the Twisted reactor daphne runs on, if any."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not under daphne; importing the reactor here would install the wrong one
    from twisted.internet import reactor

    if getattr(reactor, "_chat_shutdown_hook", False):
        return
    reactor.addSystemEventTrigger("before", "shutdown", close_all_going_away)
    reactor._chat_shutdown_hook = True
