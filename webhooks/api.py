"""REST: a room's webhook subscriptions, for its admins. Validate, call one service, serialize.

Refusals are the chat's (chat.domain.refusals), answered by chat.api.errors in its one shape:
404 `room_not_found` outside the user's rooms, 403 `not_room_admin`, 403 `not_allowed` for a
URL the server will not POST to (loopback, private networks: docs/protocol.md, "Webhooks").
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.api.serializers import TextField
from chat.api.throttling import ChatWriteThrottle
from chat.domain import refusals
from chat.domain.access import accessible_rooms
from chat.domain.models import Room
from webhooks import services
from webhooks.models import ALL_EVENTS, WebhookSubscription

URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
URL_SCHEMA = {
    "type": "string",
    # Not "uri": whether a URL is acceptable also depends on where its host resolves, which a
    # schema cannot say (403 `not_allowed`); tests/security/test_schema_fuzz.py generates it.
    "format": "webhook-url",
    "pattern": URL_PATTERN,
    "maxLength": 2000,
    "example": "https://crm.example.com/hooks/chat",
}


@extend_schema_field(URL_SCHEMA)
class WebhookURLField(TextField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)
        self.validators.append(RegexValidator(URL_PATTERN, "an http:// or https:// URL"))


class WebhookCreateSerializer(serializers.Serializer):
    url = WebhookURLField()
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=ALL_EVENTS),
        required=False,
        allow_empty=False,
        min_length=1,
        help_text="what to be told of; omitted: all of them",
    )


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=ALL_EVENTS))

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "active", "created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        help_text="signs every delivery (X-Chat-Signature); shown this once, keep it"
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


def room_for_request(request: Request, room_id) -> Room:
    """The room, if the user is a member (404 `room_not_found` otherwise, as chat.api's)."""
    room = accessible_rooms(request.user).filter(pk=room_id).first()
    if room is None:
        raise refusals.RoomNotFound()
    return room


class RoomWebhooksView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(responses=WebhookSerializer(many=True))
    def get(self, request: Request, room_id) -> Response:
        """The room's webhook subscriptions (room admins only); secrets are not shown."""
        room = room_for_request(request, room_id)
        subscriptions = services.subscription_list(room=room, by=request.user)
        return Response(WebhookSerializer(subscriptions, many=True).data)

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookCreatedSerializer})
    def post(self, request: Request, room_id) -> Response:
        """Subscribe a URL to the room's changes (room admins only); the answer carries the
        signing secret, shown this once."""
        room = room_for_request(request, room_id)
        body = WebhookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        subscription = services.subscription_create(
            room=room, by=request.user, **body.validated_data
        )
        return Response(WebhookCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)


class RoomWebhookView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(responses={204: OpenApiResponse(description="removed")})
    def delete(self, request: Request, room_id, webhook_id: int) -> Response:
        """Remove a subscription (room admins only), with its deliveries not yet sent."""
        room = room_for_request(request, room_id)
        if not services.subscription_delete(room=room, subscription_id=webhook_id, by=request.user):
            raise Http404("no such webhook in this room")  # 404 `not_found`
        return Response(status=status.HTTP_204_NO_CONTENT)
