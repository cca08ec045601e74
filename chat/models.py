"""Django finds an app's models in `<app>.models`: the chat's live in chat.domain."""

from chat.domain.models import Membership, Message, MessageRevision, Reaction, Room

__all__ = ["Membership", "Message", "MessageRevision", "Reaction", "Room"]
