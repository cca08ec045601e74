from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers

from chat import protocol
from chat.models import Membership, Room


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    username = serializers.CharField()


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

    def to_representation(self, instance):
        return protocol.message_payload(instance)


class RoomSerializer(serializers.ModelSerializer):
    member_count = serializers.IntegerField(read_only=True)
    unread_count = serializers.IntegerField(read_only=True)
    last_message = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = [
            "id",
            "name",
            "type",
            "created_at",
            "member_count",
            "unread_count",
            "last_message",
        ]
        read_only_fields = ["id", "created_at"]

    def get_last_message(self, room) -> MessageSerializer(allow_null=True):
        last = self.context.get("last_messages", {}).get(room.pk)
        return protocol.message_payload(last) if last else None


class TextField(serializers.CharField):
    """Text as JSON sends it: DRF's CharField would take a number for its digits (0 as "0")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class RoomCreateSerializer(serializers.ModelSerializer):
    name = TextField(max_length=200)

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


class HistoryQuerySerializer(serializers.Serializer):
    before = serializers.IntegerField(required=False, min_value=1)
    after = serializers.IntegerField(required=False, min_value=0)
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        default=settings.CHAT_HISTORY_DEFAULT_LIMIT,
        help_text=f"page size; larger values are capped at {settings.CHAT_HISTORY_MAX_LIMIT}",
    )

    def validate_limit(self, value: int) -> int:
        return min(value, settings.CHAT_HISTORY_MAX_LIMIT)


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


class MessageTextField(TextField):
    """A message's text as sent; the rules for it (not blank, not too long) are the domain's."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)
        # NUL is text like any other, as on the socket (chat.fields.NulSafeTextField stores it).
        self.validators = [
            v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)
        ]

    def to_internal_value(self, data):
        return _encodable(super().to_internal_value(data))


class MessageEditSerializer(serializers.Serializer):
    message = MessageTextField()


class MessagePostSerializer(serializers.Serializer):
    message = MessageTextField()
    client_id = TextField(
        required=False,
        min_length=1,
        max_length=protocol.MAX_CLIENT_ID_LENGTH,
        help_text="a retry with the same client_id is stored once (200 with the stored message)",
    )

    def validate_client_id(self, value: str) -> str:
        return _encodable(value)


class RoomRenameSerializer(serializers.Serializer):
    name = TextField(max_length=200)


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
