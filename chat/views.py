"""REST views: validate, call one selector or service, serialize."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services
from chat.access import accessible_rooms, is_room_admin
from chat.models import Room
from chat.serializers import (
    HistoryQuerySerializer,
    MemberAddSerializer,
    MessagePageSerializer,
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
        room = room_for_request(request, room_id)
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.message_list(room=room, **query.validated_data)
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
        membership, created = services.membership_add(room=room, user=user)
        body = {"id": user.pk, "username": user.username, "role": membership.role}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RoomMemberView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, room_id, user_id: int) -> Response:
        """Remove a member (room admins only); their open sockets to the room are closed."""
        room = room_for_admin(request, room_id)
        user = get_object_or_404(get_user_model(), pk=user_id)
        if not services.membership_remove(room=room, user=user):
            return Response(
                {"detail": "user is not a member of this room"}, status=status.HTTP_404_NOT_FOUND
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
