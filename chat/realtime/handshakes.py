"""Handshake checks: credential, room and membership, for every handshake waiting at once.

A burst of connections (a department opening the CRM at nine, every client reconnecting after
a deploy) used to cost each handshake its own trip to the database thread and its own
queries. Handshakes that arrive while one check is running now wait for the next, which
checks up to MAX_BATCH of them in one trip with two queries (the users; the rooms joined to
the memberships). A lone handshake is checked at once, as before.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from channels.db import database_sync_to_async

from chat.domain.access import rooms_for_connections
from chat.domain.models import Room
from chat.domain.refusals import Refusal
from chat.protocol import Rejection
from chat.realtime.auth import Credential, TokenCheck, authenticate_credentials
from chat.realtime.refusals import websocket_refusal

# Handshakes checked per call. A call holds the GIL 0.1-0.2 ms per handshake while the event
# loop waits; uncapped, bursts made calls of ~100 and left the server idle between them (S3:
# 340-410 handshakes/s at 0.65-0.8 of a core; 480-540/s at 0.9 with 16-40 per call).
MAX_BATCH = 32


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    credential: Credential
    room_id: str
    path: str


@dataclass(frozen=True, slots=True)
class HandshakeCheck:
    """Who is connecting (or why not), and the room it may have (or why not)."""

    auth: TokenCheck
    room: Room | None
    rejection: Rejection | None


# The Room instances this process's sockets hold, one per room row: an idle socket's memory
# is what limits connections per process (S3), and a room's hundreds of sockets need only one.
_rooms_held: weakref.WeakValueDictionary[object, Room] = weakref.WeakValueDictionary()


def shared_room(room: Room) -> Room:
    """The instance of `room` that sockets already hold, if its row is the same; otherwise
    `room`, held from now on. Event loop only.

    Sockets and services only read their room (its pk, name, type): whatever caches on it
    (a related manager, a prefetch, refresh_from_db) would be seen by every socket of the
    room, from several threads. Give such code the room's pk, or a Room of its own.
    """
    held = _rooms_held.get(room.pk)
    if held is not None and _same_row(held, room):
        return held
    _rooms_held[room.pk] = room
    return room


def _same_row(one: Room, other: Room) -> bool:
    return all(
        getattr(one, field.attname) == getattr(other, field.attname)
        for field in Room._meta.concrete_fields
    )


def check_handshakes(requests: list[HandshakeRequest]) -> list[HandshakeCheck]:
    """Each request's check, in order. Runs in the database thread."""
    auths = authenticate_credentials(
        [request.credential for request in requests], paths=[request.path for request in requests]
    )
    accepted = [
        (auth.user, request.room_id)
        for auth, request in zip(auths, requests, strict=True)
        if auth.refusal is None
    ]
    rooms = iter(rooms_for_connections(accepted))
    return [
        HandshakeCheck(auth, None, auth.refusal)
        if auth.refusal is not None
        else _room_check(auth, *next(rooms))
        for auth in auths
    ]


def _room_check(auth: TokenCheck, room: Room | None, refusal: Refusal | None) -> HandshakeCheck:
    return HandshakeCheck(auth, room, websocket_refusal(refusal) if refusal else None)


async def check_handshake(request: HandshakeRequest) -> HandshakeCheck:
    """The request's check, made together with those of other handshakes waiting now.

    Raises what the check raised (a DatabaseError: the database is unavailable).
    """
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = _HandshakeQueue()
    return await queue.check(request)


class _HandshakeQueue:
    """The handshakes of one event loop waiting for the database thread."""

    def __init__(self) -> None:
        self._waiting: list[tuple[HandshakeRequest, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def check(self, request: HandshakeRequest) -> HandshakeCheck:
        checked = asyncio.get_running_loop().create_future()
        self._waiting.append((request, checked))
        if self._task is None or self._task.done():  # done: cancelled before it ever ran
            self._task = asyncio.ensure_future(self._check_waiting())
        return await checked

    async def _check_waiting(self) -> None:
        batch: list[tuple[HandshakeRequest, asyncio.Future]] = []
        try:
            while self._waiting:
                waiting = [
                    (request, checked) for request, checked in self._waiting if not checked.done()
                ]
                batch, self._waiting = waiting[:MAX_BATCH], waiting[MAX_BATCH:]  # gone: skipped
                if batch:
                    await _settle(batch)
        finally:
            self._task = None
            # Unresolved only when this task failed or was cancelled (the loop is closing).
            for _, checked in batch + self._waiting:
                checked.cancel()
            self._waiting = []


async def _settle(batch: list[tuple[HandshakeRequest, asyncio.Future]]) -> None:
    """Resolves every future of the batch: its check, or the error that stopped the call."""
    try:
        checks = await database_sync_to_async(check_handshakes)([request for request, _ in batch])
    except Exception as error:
        for _, checked in batch:
            if not checked.done():
                checked.set_exception(error)
        return
    for (_, checked), check in zip(batch, checks, strict=True):
        if not checked.done():  # its client may have gone meanwhile
            checked.set_result(check)


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _HandshakeQueue] = (
    weakref.WeakKeyDictionary()
)
