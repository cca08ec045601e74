"""Keeps a server process's open sockets honest about the channel layer.

A socket that stays open while it can no longer receive its room's messages is worse than a
closed one: the client believes it is live. One watchdog task per process (per event loop)
checks the channel layer every CHAT_LAYER_CHECK_SECONDS with a real round trip and, on Redis,
watches the server's run_id. When the layer fails or Redis restarted (its memory wiped),
every chat socket of this process is closed with `service_unavailable` / 1013: clients
reconnect and recover what they missed with `after=`. On RedisChannelLayer the same loop
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
from chat.realtime.fanout import room_hub

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


class LayerWatchdog:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.redis_run_id: str | None = None

    async def run(self) -> None:
        # The Redis run_id the first socket opened under: a restart before the first check
        # must still count as one (its subscriptions and groups are gone).
        try:
            self.redis_run_id = await asyncio.wait_for(redis_run_id(), ROUND_TRIP_TIMEOUT_SECONDS)
        except Exception:  # Redis is down already: the first check says so
            logger.warning("channel layer watchdog: Redis unreachable at start")
        while True:
            await asyncio.sleep(settings.CHAT_LAYER_CHECK_SECONDS)
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("channel layer watchdog failed")

    async def check_once(self) -> None:
        problem = await self.layer_problem()
        if problem is None:
            await self.refresh_groups()
            await self.renew_presence()
            return
        sockets = list(_open_sockets)
        logger.error("channel layer %s: closing %d sockets with 1013", problem, len(sockets))
        metrics.watchdog_failures.labels(problem.split(" ", 1)[0]).inc()
        self.channel = None
        await asyncio.gather(*(socket.layer_lost() for socket in sockets), return_exceptions=True)

    async def layer_problem(self) -> str | None:
        try:
            with metrics.layer_round_trip.time():
                await asyncio.wait_for(self.round_trip(), ROUND_TRIP_TIMEOUT_SECONDS)
            run_id = await asyncio.wait_for(redis_run_id(), ROUND_TRIP_TIMEOUT_SECONDS)
        except Exception as error:
            return f"unavailable ({type(error).__name__}: {error})"
        restarted = self.redis_run_id is not None and run_id != self.redis_run_id
        self.redis_run_id = run_id
        return "restarted (Redis run_id changed; its groups are gone)" if restarted else None

    async def round_trip(self) -> None:
        if self.channel is None:
            # The default prefix matters: RedisChannelLayer reads all of a process's channels
            # from one list per prefix, so a custom prefix would wait behind the consumers'.
            self.channel = await self.layer.new_channel()
        await self.layer.send(self.channel, {"type": "liveness.check"})
        await self.layer.receive(self.channel)

    async def refresh_groups(self) -> None:
        """RedisChannelLayer forgets group members after group_expiry: subscribe rooms again."""
        if not hasattr(self.layer, "group_expiry"):
            return
        await room_hub().resubscribe()

    async def renew_presence(self) -> None:
        """Keep this process's users online; announce users whose process died as offline."""
        from chat.realtime.presence import presence_store

        entries = [entry for socket in list(_open_sockets) if (entry := _presence_entry(socket))]
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


async def redis_run_id() -> str | None:
    """The Redis server's run_id: it changes when Redis restarts and loses its state."""
    if not settings.REDIS_URL:
        return None
    from redis.asyncio import Redis

    client = Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
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
