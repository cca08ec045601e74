"""What the chat domain announces: one event per committed change to a room.

Domain operations (chat.domain.services) call `announce_on_commit` inside their transaction; the
event reaches the publisher only once the transaction commits, so nothing that rolled back is
ever announced (Zulip's send_event_on_commit, Odoo's bus). The publisher is the real-time
tier's (chat.realtime.delivery, installed by ChatConfig.ready): the domain knows no channel layer.

Recorders (`recorder_install`) are the other way out: called at once, inside the change's
transaction, so what they write (an outbox: webhooks.outbox) commits or rolls back with the
change itself. The domain knows none of them either.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MessageCreated:
    room_id: uuid.UUID
    message: Any  # chat.domain.models.Message


@dataclass(frozen=True, slots=True)
class MessageEdited:
    room_id: uuid.UUID
    message: Any


@dataclass(frozen=True, slots=True)
class MessageDeleted:
    room_id: uuid.UUID
    message: Any


@dataclass(frozen=True, slots=True)
class ThreadUpdated:
    """A thread's root after a reply: its reply_count and last_reply_at changed."""

    room_id: uuid.UUID
    message: Any


@dataclass(frozen=True, slots=True)
class ReactionsChanged:
    """A message's reactions after one was added or removed: every emoji's count and who
    reacted with it (each receiver is told whether it did)."""

    room_id: uuid.UUID
    message_id: int
    change_seq: int
    reactions: tuple  # of chat.domain.reactions.ReactionSummary


@dataclass(frozen=True, slots=True)
class NotificationsCreated:
    """A message notified these users (chat.domain.models.Notification): each user's sockets,
    in whatever room they have open, are told."""

    room_id: uuid.UUID
    notifications: tuple
    message: Any


@dataclass(frozen=True, slots=True)
class ReadMarkerMoved:
    room_id: uuid.UUID
    user_id: int
    username: str
    message_id: int
    shared: bool = True  # the room's `seen_by`: False, only the reader's own sockets hear it


@dataclass(frozen=True, slots=True)
class MemberAdded:
    room_id: uuid.UUID
    user_id: int
    username: str
    role: str


# Why a member lost a room (chat.domain.access.AccessLost's values).
REMOVED_FROM_ROOM = "removed_from_room"
USER_INACTIVE = "user_inactive"


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    """A user lost access to the room: removed from it, or deactivated (`reason`)."""

    room_id: uuid.UUID
    user_id: int
    reason: str = REMOVED_FROM_ROOM


@dataclass(frozen=True, slots=True)
class RoomUpdated:
    """The room's name or settings changed."""

    room_id: uuid.UUID
    name: str
    seen_by: bool
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ApiKeyRevoked:
    """A service account's API key was revoked (apikeys): the sockets it opened close, on
    every server process. Not a room's: it goes to the account's own sockets."""

    user_id: int
    key_id: int


RoomEvent = (
    MessageCreated
    | MessageEdited
    | MessageDeleted
    | ThreadUpdated
    | ReactionsChanged
    | NotificationsCreated
    | ReadMarkerMoved
    | MemberAdded
    | MemberRemoved
    | RoomUpdated
    | ApiKeyRevoked
)


@dataclass(slots=True)
class Announcement:
    """Whether an event reached the publisher: None until its transaction commits."""

    event: RoomEvent
    delivered: bool | None = field(default=None)


# The publisher: event -> True if it was handed to every server process, False if not.
Publisher = Callable[[RoomEvent], bool]


def _publish_nowhere(event: RoomEvent) -> bool:
    logger.warning("no publisher installed; %s not announced", type(event).__name__)
    return False


_publisher: Publisher = _publish_nowhere


def publisher_install(publisher: Publisher) -> None:
    """Where committed events go (the real-time tier installs its own at start-up)."""
    global _publisher
    _publisher = publisher


# A recorder: event -> None, writing what it keeps in the current transaction (raising fails
# the change); and whether it would write anything for a room at all.
Recorder = Callable[[RoomEvent], None]
RoomInterest = Callable[[uuid.UUID], bool]


@dataclass(frozen=True, slots=True)
class _Recording:
    record: Recorder
    interested: RoomInterest


_recordings: list[_Recording] = []
# The room a change was just told no recorder wants (recorded_atomically): not asked again.
_room_not_recorded: ContextVar[uuid.UUID | None] = ContextVar("room_not_recorded", default=None)


def recorder_install(record: Recorder, *, interested: RoomInterest) -> None:
    """Call `record` with every event inside its change's transaction, before it commits
    (the webhooks app installs its outbox at start-up)."""
    _recordings.append(_Recording(record, interested))


def recorded_atomically(room_id: uuid.UUID) -> contextlib.AbstractContextManager:
    """For a change stored without a transaction of its own (one INSERT is atomic by itself):
    a transaction only when a recorder will write with it, so the change and what is recorded
    of it commit together; otherwise none, and the recorders are not asked again inside."""
    if any(recording.interested(room_id) for recording in _recordings):
        return transaction.atomic()
    return _not_recorded(room_id)


@contextlib.contextmanager
def _not_recorded(room_id: uuid.UUID) -> Iterator[None]:
    token = _room_not_recorded.set(room_id)
    try:
        yield
    finally:
        _room_not_recorded.reset(token)


def _record(event: RoomEvent) -> None:
    room_id = getattr(event, "room_id", None)  # an account's events (a key revoked) have none
    if room_id is not None and _room_not_recorded.get() == room_id:
        return
    for recording in _recordings:
        recording.record(event)


def announce_on_commit(event: RoomEvent) -> Announcement:
    """Hand `event` to the recorders now, and publish it once the current transaction commits
    (at once outside of one)."""
    _record(event)  # inside the transaction: an outbox row rolls back with the change
    announcement = Announcement(event)

    def publish() -> None:
        announcement.delivered = _publisher(event)

    # Robust: a publisher that fails must not turn a committed change into an error, nor keep
    # the transaction's other announcements from going out.
    transaction.on_commit(publish, robust=True)
    return announcement
