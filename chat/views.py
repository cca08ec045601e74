"""REST views: validate, call one selector or service, serialize."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.websocket_auth import authenticate_token
from chat import events, protocol, selectors, services
from chat.access import accessible_rooms, is_room_admin, room_for_connection
from chat.models import Room
from chat.protocol import Rejection
from chat.serializers import (
    AccessCheckSerializer,
    DirectRoomSerializer,
    HistoryQuerySerializer,
    MemberAddSerializer,
    MessageEditSerializer,
    MessagePageSerializer,
    MessageSerializer,
    PresenceSerializer,
    ReadMarkerSerializer,
    RoomCreateSerializer,
    RoomDetailSerializer,
    RoomSerializer,
)


def room_for_request(request: Request, room_id) -> Room:
    """The room, if the user may see it; 404 otherwise (as for any object outside a queryset)."""
    return get_object_or_404(accessible_rooms(request.user), pk=room_id)


def room_for_admin(request: Request, room_id) -> Room:
    room = room_for_request(request, room_id)
    if not is_room_admin(request.user, room):
        raise PermissionDenied("only room admins can change membership")
    return room


class RoomListView(APIView):
    @extend_schema(responses=RoomSerializer(many=True))
    def get(self, request: Request) -> Response:
        """The rooms the user is a member of, with member count and last message."""
        rooms = list(selectors.room_list_for_user(user=request.user))
        context = {"last_messages": selectors.last_messages(rooms=rooms)}
        return Response(RoomSerializer(rooms, many=True, context=context).data)

    @extend_schema(request=RoomCreateSerializer, responses={201: RoomDetailSerializer})
    def post(self, request: Request) -> Response:
        """Create a room; the creator becomes its admin."""
        serializer = RoomCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        room = services.room_create(created_by=request.user, **serializer.validated_data)
        room = selectors.room_list_for_user(user=request.user).get(pk=room.pk)
        return Response(RoomDetailSerializer(room).data, status=status.HTTP_201_CREATED)


class RoomDetailView(APIView):
    @extend_schema(responses=RoomDetailSerializer)
    def get(self, request: Request, room_id) -> Response:
        """One room with its members (members only)."""
        room_for_request(request, room_id)
        room = selectors.room_detail(user=request.user, room_id=room_id)
        context = {"last_messages": selectors.last_messages(rooms=[room])}
        return Response(RoomDetailSerializer(room, context=context).data)


class RoomMessagesView(APIView):
    @extend_schema(parameters=[HistoryQuerySerializer], responses=MessagePageSerializer)
    def get(self, request: Request, room_id) -> Response:
        """History, oldest first: `after=<id>` recovers missed messages; `before=<id>` pages."""
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.member_message_list(
            user=request.user, room_id=room_id, **query.validated_data
        )
        if page is None:
            raise NotFound("No Room matches the given query.")
        return Response(MessagePageSerializer(page).data)


class RoomMembersView(APIView):
    @extend_schema(
        request=MemberAddSerializer,
        responses={
            201: OpenApiResponse(description="added"),
            200: OpenApiResponse(description="already a member"),
        },
    )
    def post(self, request: Request, room_id) -> Response:
        """Add a user to the room (room admins only)."""
        room = room_for_admin(request, room_id)
        serializer = MemberAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = get_object_or_404(
            get_user_model(), pk=serializer.validated_data["user_id"], is_active=True
        )
        try:
            membership, created = services.membership_add(room=room, user=user)
        except services.ChatActionRefused as refusal:
            raise refused(refusal) from None
        body = {"id": user.pk, "username": user.username, "role": membership.role}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RoomMemberView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, room_id, user_id: int) -> Response:
        """Remove a member (room admins only); their open sockets to the room are closed."""
        room = room_for_admin(request, room_id)
        user = get_object_or_404(get_user_model(), pk=user_id)
        try:
            removed = services.membership_remove(room=room, user=user)
        except services.ChatActionRefused as refusal:
            raise refused(refusal) from None
        if not removed:
            return Response(
                {"detail": "user is not a member of this room"}, status=status.HTTP_404_NOT_FOUND
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


def refused(refusal: services.ChatActionRefused):
    """A domain refusal as the matching HTTP error, with the protocol's code."""
    if refusal.code == "message_not_found":
        return NotFound({"detail": refusal.detail, "code": refusal.code})
    if refusal.code == "invalid_frame":
        return ValidationError({"detail": refusal.detail, "code": refusal.code})
    return PermissionDenied({"detail": refusal.detail, "code": refusal.code})


class RoomMessageView(APIView):
    @extend_schema(request=MessageEditSerializer, responses=MessageSerializer)
    def patch(self, request: Request, room_id, message_id: int) -> Response:
        """Edit a message (its author, within CHAT_EDIT_WINDOW_SECONDS); sockets get
        `chat.message.updated`."""
        room = room_for_request(request, room_id)
        body = MessageEditSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            message = services.message_edit(
                room=room,
                message_id=message_id,
                editor=request.user,
                text=body.validated_data["message"],
            )
        except services.ChatActionRefused as refusal:
            raise refused(refusal) from None
        payload = protocol.message_payload(message, type="chat.message.updated")
        events.broadcast_to_room(room.pk, protocol.dumps(payload))
        return Response(protocol.message_payload(message))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, room_id, message_id: int) -> Response:
        """Delete a message (its author or a room admin); sockets get `chat.message.deleted`."""
        room = room_for_request(request, room_id)
        try:
            message = services.message_delete(room=room, message_id=message_id, actor=request.user)
        except services.ChatActionRefused as refusal:
            raise refused(refusal) from None
        events.broadcast_to_room(room.pk, protocol.message_deleted_frame(message))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoomReadView(APIView):
    @extend_schema(request=ReadMarkerSerializer, responses=ReadMarkerSerializer)
    def post(self, request: Request, room_id) -> Response:
        """Mark the room read up to `message_id`; other members' sockets get a `read` frame."""
        room = room_for_request(request, room_id)
        body = ReadMarkerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            marker = services.read_marker_set(
                room=room, user=request.user, message_id=body.validated_data["message_id"]
            )
        except services.ChatActionRefused as refusal:
            raise refused(refusal) from None
        user = protocol.user_payload(request.user.pk, request.user.username)
        events.broadcast_to_room(
            room.pk, protocol.read_frame(room_id=room.pk, user=user, message_id=marker)
        )
        return Response({"message_id": marker})


class RoomPresenceView(APIView):
    @extend_schema(responses=PresenceSerializer)
    def get(self, request: Request, room_id) -> Response:
        """Members with at least one open socket to the room, on any server process."""
        room = room_for_request(request, room_id)
        online = selectors.online_members(room=room)
        return Response({"online": [{"id": u.pk, "username": u.username} for u in online]})


class DirectRoomView(APIView):
    @extend_schema(request=DirectRoomSerializer, responses={200: RoomDetailSerializer})
    def post(self, request: Request) -> Response:
        """The 1:1 room with `user_id`: the existing one (200) or a new one (201)."""
        body = DirectRoomSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        other = get_object_or_404(
            get_user_model(), pk=body.validated_data["user_id"], is_active=True
        )
        try:
            room, created = services.direct_room_get_or_create(user=request.user, other=other)
        except services.ChatActionRefused as refusal:
            raise refused(refusal) from None
        room = selectors.room_detail(user=request.user, room_id=room.pk)
        return Response(
            RoomDetailSerializer(room).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RoomAccessView(APIView):
    """Pre-flight: would a socket to this room be accepted? The socket's own checks and codes."""

    authentication_classes = []  # token problems are answers here, not 401s
    permission_classes = [AllowAny]

    @extend_schema(responses=AccessCheckSerializer)
    def get(self, request: Request, room_id: str) -> Response:
        """`{"allowed": true}`, or the error code, close code and detail the socket would send."""
        rejection = self.rejection(request, room_id)
        if rejection is None:
            return Response({"allowed": True})
        return Response(
            {
                "allowed": False,
                "code": str(rejection),
                "close_code": int(rejection.close_code),
                "detail": rejection.default_detail,
            }
        )

    def rejection(self, request: Request, room_id: str) -> Rejection | None:
        scheme, _, raw_token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not raw_token.strip():
            return Rejection.AUTHENTICATION_REQUIRED
        check = authenticate_token(raw_token.strip())
        if check.refusal is not None:
            return check.refusal
        return room_for_connection(user=check.user, room_id=room_id)[1]
