import re

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat import protocol
from chat.domain import records
from chat.domain.models import RETENTION_DAYS_MAX, Membership, Room

MAX_ID = 2**63 - 1  # the id columns' range (a larger number names nothing, and SQLite refuses it)


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    username = serializers.CharField()


class StrictBooleanField(serializers.BooleanField):
    """true or false, as JSON says them (DRF's BooleanField also takes 0, 1, "yes"...)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ReactionSerializer(serializers.Serializer):
    emoji = serializers.CharField()
    count = serializers.IntegerField()
    me = serializers.BooleanField(help_text="whether the requesting user reacted with it")


class MessageSerializer(serializers.Serializer):
    """A stored message: the same fields as a `chat.message` frame on the socket."""

    type = serializers.CharField()
    id = serializers.IntegerField()
    room = serializers.UUIDField()
    message = serializers.CharField()
    user = UserRefSerializer()
    created_at = serializers.CharField()
    client_id = serializers.CharField(allow_null=True)
    edited_at = serializers.CharField(allow_null=True)
    deleted = serializers.BooleanField()
    reply_to = serializers.IntegerField(
        allow_null=True, help_text="the thread's root, for a reply; null otherwise"
    )
    reply_count = serializers.IntegerField(help_text="on a thread's root: its replies")
    last_reply_at = serializers.CharField(allow_null=True)
    change_seq = serializers.IntegerField(
        help_text="the room's change number at this message's last change (0: never changed)"
    )
    mentions = serializers.ListField(
        child=serializers.IntegerField(), help_text="ids of the members the message mentions"
    )
    attachments = serializers.ListField(child=serializers.DictField())
    reactions = ReactionSerializer(many=True)
    kind = serializers.ChoiceField(
        choices=["user", "system"],
        help_text="user: written by a member; system: an event of the room's record, "
        "its facts in `data`",
    )
    data = serializers.DictField(
        allow_null=True, help_text="a system message's facts (e.g. a stage change); null"
    )

    def to_representation(self, instance):
        return protocol.message_payload(instance)


class RecordSerializer(serializers.Serializer):
    type = serializers.CharField(help_text='"<app_label>.<model>", e.g. "crm.deal"')
    id = serializers.CharField(help_text="the record's primary key")
    label = serializers.CharField(help_text="how the CRM names the record")


class RoomSerializer(serializers.ModelSerializer):
    seen_by = serializers.BooleanField(read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    unread_count = serializers.IntegerField(read_only=True)
    mention_count = serializers.IntegerField(
        read_only=True, help_text="unread messages of the room that mention the user"
    )
    last_message = serializers.SerializerMethodField()
    record = serializers.SerializerMethodField(
        help_text="the CRM record the room is about ({type, id, label}); null for other rooms"
    )
    read_only = serializers.BooleanField(
        read_only=True, help_text="closed to new messages (its record is closed)"
    )
    retention_days = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="messages older than this many days are deleted (tombstones); null: never",
    )

    class Meta:
        model = Room
        fields = [
            "id",
            "name",
            "type",
            "created_at",
            "seen_by",
            "member_count",
            "unread_count",
            "mention_count",
            "last_message",
            "record",
            "read_only",
            "retention_days",
        ]
        read_only_fields = ["id", "created_at"]

    def get_record(self, room) -> RecordSerializer(allow_null=True):
        return records.record_payload(room)

    def get_last_message(self, room) -> MessageSerializer(allow_null=True):
        last = self.context.get("last_messages", {}).get(room.pk)
        if last is None:
            return None
        reactions = self.context.get("last_reactions", {}).get(last.pk, ())
        return protocol.message_payload(
            last, reactions=reactions, viewer_id=self.context.get("viewer_id")
        )


class TextField(serializers.CharField):
    """Text as JSON sends it: DRF's CharField would take a number for its digits (0 as "0")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class RoomCreateSerializer(serializers.ModelSerializer):
    name = TextField(max_length=200)
    # Direct rooms come from POST /api/chat/direct/ only: exactly two members, forever.
    type = serializers.ChoiceField(
        choices=[Room.Type.GROUP, Room.Type.COMMUNITY],
        default=Room.Type.GROUP,
        error_messages={
            "invalid_choice": '"{input}" is not a room type you can create here '
            "(group or community; direct rooms: POST /api/chat/direct/ {{user_id}})"
        },
    )

    class Meta:
        model = Room
        fields = ["name", "type"]


class MemberSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="user.id")
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "joined_at"]


class RoomDetailSerializer(RoomSerializer):
    members = MemberSerializer(source="memberships", many=True, read_only=True)

    class Meta(RoomSerializer.Meta):
        fields = [*RoomSerializer.Meta.fields, "members"]


class PageLimitField(serializers.IntegerField):
    """A page size, as every paged endpoint takes it: at least 1, capped at
    CHAT_HISTORY_MAX_LIMIT (a larger one is not an error)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("default", settings.CHAT_HISTORY_DEFAULT_LIMIT)
        kwargs.setdefault(
            "help_text",
            f"page size; larger values are capped at {settings.CHAT_HISTORY_MAX_LIMIT}",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> int:
        return min(super().to_internal_value(data), settings.CHAT_HISTORY_MAX_LIMIT)


class HistoryQuerySerializer(serializers.Serializer):
    before = serializers.IntegerField(required=False, min_value=1)
    after = serializers.IntegerField(required=False, min_value=0)
    thread = serializers.IntegerField(
        required=False, min_value=1, help_text="a thread's root: page its replies only"
    )
    limit = PageLimitField()


class ChangesQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=0, help_text="the last change_seq seen (0: every change)"
    )
    limit = PageLimitField()


EMOJI_SCHEMA = {
    "type": "string",
    "format": "emoji",
    "minLength": 1,
    "maxLength": 64,
    "description": "exactly one emoji of Unicode's emoji set (skin tones, flags, keycaps "
    "and ZWJ sequences included); anything else is `invalid_emoji`",
}


@extend_schema_field(EMOJI_SCHEMA)
class EmojiField(serializers.CharField):
    """One emoji; which strings are emoji is the domain's rule (services.emoji_check)."""

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, max_length=64, **kwargs)


class ReactionRequestSerializer(serializers.Serializer):
    emoji = EmojiField()


class MessageReactionsSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the message's id")
    reactions = ReactionSerializer(many=True)


class MessagePageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    has_more = serializers.BooleanField()


class MemberAddSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()


class ReadMarkerSerializer(serializers.Serializer):
    message_id = serializers.IntegerField(min_value=1)


def _encodable(value: str) -> str:
    """JSON escapes can smuggle lone surrogates ("\\ud800"), which no UTF-8 peer can receive."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise serializers.ValidationError("not valid Unicode (a lone surrogate)") from None
    return value


class MessageTextField(serializers.Field):  # documented by chat.api.schema.MessageTextRules
    """A message's text as sent: any string UTF-8 can carry, NUL and control characters
    included (data, as on the socket; DRF's CharField would refuse NUL and turn numbers into
    text). Not blank and not too long is the domain's rule (services.message_text_check)."""

    def to_representation(self, value):
        return value

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string")
        return _encodable(data)


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": protocol.MAX_CLIENT_ID_LENGTH,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",  # no control characters
    }
)
class ClientIdField(serializers.Field):
    """A client_id by the socket's rule, chat.protocol.valid_client_id."""

    def to_representation(self, value):
        return value

    def to_internal_value(self, data):
        try:
            return protocol.valid_client_id(data)
        except protocol.ProtocolError as error:
            raise serializers.ValidationError(error.detail) from None


class MessageEditSerializer(serializers.Serializer):
    message = MessageTextField()


class MessagePostSerializer(serializers.Serializer):
    message = MessageTextField()
    client_id = ClientIdField(
        required=False,
        help_text="a retry with the same client_id is stored once (200 with the stored message)",
    )
    reply_to = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="a message of this room: the reply joins its thread",
    )
    attachments = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        max_length=settings.CHAT_MAX_ATTACHMENTS_PER_MESSAGE,
        help_text="ids of your uploads to this room (POST …/attachments/), not yet sent",
    )


class RoomRenameSerializer(serializers.Serializer):
    name = TextField(max_length=200)


class RoomSettingsSerializer(serializers.Serializer):
    """The settings to change; those left out stay as they are."""

    seen_by = StrictBooleanField(
        required=False, help_text="members see each other's read markers (seen by)"
    )
    retention_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=RETENTION_DAYS_MAX,
        help_text="messages older than this many days are deleted, daily (tombstones: ids "
        "stay); null: kept forever",
    )


class SeenBySerializer(serializers.Serializer):
    message_id = serializers.IntegerField()
    count = serializers.IntegerField()
    seen_by = UserRefSerializer(many=True)


class DirectRoomSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()


class AccessCheckSerializer(serializers.Serializer):
    """Whether a socket to this room would be accepted, and if not, what it would say."""

    allowed = serializers.BooleanField()
    code = serializers.CharField(required=False)
    close_code = serializers.IntegerField(required=False)
    detail = serializers.CharField(required=False)


class PresenceSerializer(serializers.Serializer):
    online = UserRefSerializer(many=True)


class RoomRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["mention", "reply", "direct"])
    room = RoomRefSerializer()
    message = MessageSerializer()
    created_at = serializers.CharField()
    read = serializers.BooleanField()


class NotificationPageSerializer(serializers.Serializer):
    results = NotificationSerializer(many=True)
    has_more = serializers.BooleanField()
    unread_count = serializers.IntegerField(help_text="all the user's unread notifications")


class NotificationQuerySerializer(serializers.Serializer):
    before = serializers.IntegerField(required=False, min_value=1)
    limit = PageLimitField()


class NotificationsReadSerializer(serializers.Serializer):
    up_to = serializers.IntegerField(min_value=1, help_text="the newest notification id read")


class NotificationsReadResultSerializer(serializers.Serializer):
    marked = serializers.IntegerField()
    unread_count = serializers.IntegerField()


class NotificationSettingsSerializer(serializers.Serializer):
    email_digests = StrictBooleanField(
        help_text="e-mail a digest of unread notifications (CHAT_NOTIFY_EMAIL_AFTER_MINUTES)"
    )


@extend_schema_field({"type": "string", "pattern": "^[0-9]{1,4}$"})
class SearchCursorField(serializers.Field):
    """A page's `next`: where the following page starts."""

    def to_representation(self, value):
        return str(value)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(r"[0-9]{1,4}", data):
            raise serializers.ValidationError("not a cursor of this search")
        return int(data)


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(
        max_length=200,
        help_text='words (all required), "a phrase", -excluded, `or` between two terms',
    )
    room = serializers.UUIDField(required=False, help_text="only this room (one of yours)")
    # "from" is a keyword in Python: the field is named in `get_fields`.
    before = serializers.DateTimeField(required=False, help_text="sent before (ISO 8601)")
    after = serializers.DateTimeField(required=False, help_text="sent at or after (ISO 8601)")
    cursor = SearchCursorField(required=False, help_text="`next` of the previous page")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=50, default=20)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField(
            required=False, max_length=150, help_text="only messages by this user (id or username)"
        )
        return fields


class SearchHitSerializer(serializers.Serializer):
    message = MessageSerializer()
    room = RoomRefSerializer()
    snippet = serializers.CharField(help_text="HTML: the text escaped, matches in <mark>")
    rank = serializers.FloatField(help_text="higher is better, within one search")


class SearchPageSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="the next page's `cursor`")


class AttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, help_text="any file but a program; its type is sniffed"
    )


class AttachmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    content_type = serializers.CharField(help_text="what the bytes are, not what was claimed")
    size = serializers.IntegerField()
    url = serializers.CharField()
    thumbnail_url = serializers.CharField(allow_null=True)
