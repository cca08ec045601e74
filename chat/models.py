"""Django finds an app's models in `<app>.models`: the chat's live in chat.domain."""

from chat.domain.models import (
    Attachment,
    Membership,
    Message,
    MessageRevision,
    Notification,
    NotificationSettings,
    Reaction,
    Room,
    RoomSequence,
)

__all__ = [
    "Attachment",
    "Membership",
    "Message",
    "MessageRevision",
    "Notification",
    "NotificationSettings",
    "Reaction",
    "Room",
    "RoomSequence",
]
