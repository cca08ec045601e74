"""REST views: validate, call one selector or service, serialize."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import protocol
from chat.api.schema import ErrorSerializer
from chat.api.serializers import (
    EMOJI_SCHEMA,
    AccessCheckSerializer,
    AttachmentSerializer,
    AttachmentUploadSerializer,
    ChangesQuerySerializer,
    DirectRoomSerializer,
    HistoryQuerySerializer,
    MemberAddSerializer,
    MessageEditSerializer,
    MessagePageSerializer,
    MessagePostSerializer,
    MessageReactionsSerializer,
    MessageSerializer,
    NotificationPageSerializer,
    NotificationQuerySerializer,
    NotificationSettingsSerializer,
    NotificationsReadResultSerializer,
    NotificationsReadSerializer,
    PresenceSerializer,
    ReactionRequestSerializer,
    ReadMarkerSerializer,
    RoomCreateSerializer,
    RoomDetailSerializer,
    RoomRenameSerializer,
    RoomSerializer,
    RoomSettingsSerializer,
    SearchPageSerializer,
    SearchQuerySerializer,
    SeenBySerializer,
)
from chat.api.throttling import ChatWriteThrottle
from chat.domain import (
    attachments,
    notifications,
    records,
    refusals,
    search,
    selectors,
    services,
)
from chat.domain.access import accessible_rooms, room_for_connection
from chat.domain.models import Room
from chat.protocol import Rejection
from chat.realtime.auth import authenticate_api_key, authenticate_token
from chat.realtime.presence import online_members
from chat.realtime.refusals import websocket_refusal


def room_for_request(request: Request, room_id) -> Room:
    """The room, if the user may see it; `room_not_found` (404) otherwise, whether it exists
    or not (as for any object outside the user's queryset)."""
    room = accessible_rooms(request.user).filter(pk=room_id).first()
    if room is None:
        raise refusals.RoomNotFound()
    return room


def message_body(message, *, viewer) -> dict:
    """A stored message as the viewer sees it (its reactions with `me`)."""
    reactions = selectors.reactions_of([message])
    return protocol.message_payload(
        message, reactions=reactions.get(message.pk, ()), viewer_id=viewer.pk
    )


def last_messages_context(rooms: list, *, viewer) -> dict:
    """What RoomSerializer shows as each room's last message, reactions included."""
    last = selectors.last_messages(rooms=rooms)
    reactions = selectors.reactions_of(last.values())
    return {"last_messages": last, "last_reactions": reactions, "viewer_id": viewer.pk}


def page_body(page: selectors.MessagePage, *, viewer) -> dict:
    return {
        "results": protocol.page_payloads(page, viewer_id=viewer.pk),
        "has_more": page.has_more,
    }


def active_user(user_id: int):
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise refusals.UserNotFound()
    return user


class RoomListView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(responses=RoomSerializer(many=True))
    def get(self, request: Request) -> Response:
        """The rooms the user is a member of, with member count and last message."""
        rooms = list(selectors.room_list_for_user(user=request.user))
        context = last_messages_context(rooms, viewer=request.user)
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
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(responses=RoomDetailSerializer)
    def get(self, request: Request, room_id) -> Response:
        """One room with its members (members only)."""
        room_for_request(request, room_id)
        room = selectors.room_detail(user=request.user, room_id=room_id)
        context = last_messages_context([room], viewer=request.user)
        return Response(RoomDetailSerializer(room, context=context).data)

    @extend_schema(request=RoomRenameSerializer, responses=RoomDetailSerializer)
    def patch(self, request: Request, room_id) -> Response:
        """Rename the room (room admins); its sockets get `room.updated`."""
        room = room_for_request(request, room_id)
        body = RoomRenameSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.room_rename(room=room, name=body.validated_data["name"], by=request.user)
        return self.get(request, room_id)


class RoomMessagesView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(parameters=[HistoryQuerySerializer], responses=MessagePageSerializer)
    def get(self, request: Request, room_id) -> Response:
        """History, oldest first: `after=<id>` recovers missed messages; `before=<id>` pages;
        `thread=<root id>` pages a thread's replies."""
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.member_message_list(
            user=request.user, room_id=room_id, **query.validated_data
        )
        if page is None:
            raise refusals.RoomNotFound()
        return Response(page_body(page, viewer=request.user))

    @extend_schema(
        request=MessagePostSerializer,
        responses={
            201: OpenApiResponse(MessageSerializer, description="stored and announced"),
            200: OpenApiResponse(
                MessageSerializer,
                description="a retried client_id: the "
                "message stored the first time, not announced again",
            ),
        },
    )
    def post(self, request: Request, room_id) -> Response:
        """Post a message, exactly as a socket's `chat.message`: stored, then every socket of
        the room receives it."""
        room = room_for_request(request, room_id)
        body = MessagePostSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.message_create(
            room=room,
            author=request.user,
            text=body.validated_data["message"],
            client_id=body.validated_data.get("client_id"),
            reply_to=body.validated_data.get("reply_to"),
            attachments=body.validated_data.get("attachments", ()),
        )
        return Response(
            message_body(result.message, viewer=request.user),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class RoomMembersView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(
        request=MemberAddSerializer,
        responses={
            201: OpenApiResponse(description="added"),
            200: OpenApiResponse(description="already a member"),
        },
    )
    def post(self, request: Request, room_id) -> Response:
        """Add a user to the room (room admins only)."""
        room = room_for_request(request, room_id)
        serializer = MemberAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = active_user(serializer.validated_data["user_id"])
        membership, created = services.membership_add(room=room, user=user, by=request.user)
        body = {"id": user.pk, "username": user.username, "role": membership.role}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RoomMemberView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, room_id, user_id: int) -> Response:
        """Remove a member (room admins only); their open sockets to the room are closed."""
        room = room_for_request(request, room_id)
        user = get_object_or_404(get_user_model(), pk=user_id)
        if not services.membership_remove(room=room, user=user, by=request.user):
            raise refusals.UserNotFound("user is not a member of this room")
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoomMessageView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(request=MessageEditSerializer, responses=MessageSerializer)
    def patch(self, request: Request, room_id, message_id: int) -> Response:
        """Edit a message (its author, within CHAT_EDIT_WINDOW_SECONDS); sockets get
        `chat.message.updated`."""
        room = room_for_request(request, room_id)
        body = MessageEditSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        edit = services.message_edit(
            room=room,
            message_id=message_id,
            editor=request.user,
            text=body.validated_data["message"],
        )
        return Response(message_body(edit.value, viewer=request.user))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, room_id, message_id: int) -> Response:
        """Delete a message (its author or a room admin); sockets get `chat.message.deleted`."""
        room = room_for_request(request, room_id)
        services.message_delete(room=room, message_id=message_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoomSettingsView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(request=RoomSettingsSerializer, responses=RoomDetailSerializer)
    def patch(self, request: Request, room_id) -> Response:
        """Room admins: whether members see each other's read markers, how many days
        messages are kept; only the settings given change; sockets get `room.updated`."""
        room = room_for_request(request, room_id)
        body = RoomSettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.room_settings_set(room=room, changes=body.validated_data, by=request.user)
        room = selectors.room_detail(user=request.user, room_id=room_id)
        context = last_messages_context([room], viewer=request.user)
        return Response(RoomDetailSerializer(room, context=context).data)


class MessageSeenView(APIView):
    @extend_schema(responses=SeenBySerializer)
    def get(self, request: Request, room_id, message_id: int) -> Response:
        """Who has seen a message: the members whose read marker is at or past it (its author
        aside); 403 `not_allowed` where the room keeps read markers private."""
        room = room_for_request(request, room_id)
        readers = services.seen_by_list(room=room, message_id=message_id)
        return Response(
            {
                "message_id": message_id,
                "count": len(readers),
                "seen_by": [{"id": user.pk, "username": user.username} for user in readers],
            }
        )


class RoomChangesView(APIView):
    @extend_schema(parameters=[ChangesQuerySerializer], responses=MessagePageSerializer)
    def get(self, request: Request, room_id) -> Response:
        """Messages changed after `after` (a change_seq): edited, deleted, reacted to, replied
        to; each once, as it is now, in change order. Recovery of changes, as `messages/?after=`
        is of new messages."""
        query = ChangesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.member_change_list(
            user=request.user, room_id=room_id, **query.validated_data
        )
        if page is None:
            raise refusals.RoomNotFound()
        return Response(page_body(page, viewer=request.user))


class MessageReactionsView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(
        request=ReactionRequestSerializer,
        responses={
            201: OpenApiResponse(MessageReactionsSerializer, description="added"),
            200: OpenApiResponse(MessageReactionsSerializer, description="it was there already"),
        },
    )
    def post(self, request: Request, room_id, message_id: int) -> Response:
        """React to a message with one emoji (once; again changes nothing); sockets get
        `chat.message.reactions`."""
        change = self.change(services.reaction_add, request, room_id, message_id, request.data)
        added = change.announcement is not None
        body = {"id": message_id, "reactions": self.payload(change, request)}
        return Response(body, status=status.HTTP_201_CREATED if added else status.HTTP_200_OK)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "emoji",
                EMOJI_SCHEMA,
                required=True,
                description="the emoji to take off, URL-encoded (a JSON body {emoji} works too)",
            )
        ],
        responses=MessageReactionsSerializer,
    )
    def delete(self, request: Request, room_id, message_id: int) -> Response:
        """Take one's reaction off (absent: nothing changes); sockets get
        `chat.message.reactions`. The emoji as `?emoji=` (OpenAPI documents no DELETE bodies)
        or as a body `{"emoji": ...}`."""
        data = request.data or request.query_params
        change = self.change(services.reaction_remove, request, room_id, message_id, data)
        return Response({"id": message_id, "reactions": self.payload(change, request)})

    @staticmethod
    def change(operation, request: Request, room_id, message_id: int, data):
        room = room_for_request(request, room_id)
        body = ReactionRequestSerializer(data=data)
        body.is_valid(raise_exception=True)
        return operation(
            room=room, message_id=message_id, user=request.user, emoji=body.validated_data["emoji"]
        )

    @staticmethod
    def payload(change, request: Request) -> list:
        return protocol.reactions_payload(change.value, viewer_id=request.user.pk)


class RoomReadView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(request=ReadMarkerSerializer, responses=ReadMarkerSerializer)
    def post(self, request: Request, room_id) -> Response:
        """Mark the room read up to `message_id`; other members' sockets get a `read` frame."""
        room = room_for_request(request, room_id)
        body = ReadMarkerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        marker = services.read_marker_set(
            room=room, user=request.user, message_id=body.validated_data["message_id"]
        )
        return Response({"message_id": marker.value})


class NotificationsView(APIView):
    @extend_schema(parameters=[NotificationQuerySerializer], responses=NotificationPageSerializer)
    def get(self, request: Request) -> Response:
        """The user's notifications, newest first (mentions, replies to their messages, direct
        messages); page back with `before=<the last id>`."""
        query = NotificationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page, has_more = notifications.notification_list(user=request.user, **query.validated_data)
        return Response(
            {
                "results": [protocol.notification_payload(n) for n in page],
                "has_more": has_more,
                "unread_count": notifications.unread_notification_count(user=request.user),
            }
        )


class NotificationsReadView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(request=NotificationsReadSerializer, responses=NotificationsReadResultSerializer)
    def post(self, request: Request) -> Response:
        """Mark the user's notifications read up to `up_to` (an id of the feed)."""
        body = NotificationsReadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        marked = notifications.notifications_read(
            user=request.user, up_to=body.validated_data["up_to"]
        )
        unread = notifications.unread_notification_count(user=request.user)
        return Response({"marked": marked, "unread_count": unread})


class NotificationSettingsView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(responses=NotificationSettingsSerializer)
    def get(self, request: Request) -> Response:
        """The user's notification settings."""
        enabled = notifications.email_digests_enabled(request.user)
        return Response({"email_digests": enabled})

    @extend_schema(request=NotificationSettingsSerializer, responses=NotificationSettingsSerializer)
    def patch(self, request: Request) -> Response:
        """Turn the e-mail digest on or off."""
        body = NotificationSettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        notifications.email_digests_set(
            user=request.user, enabled=body.validated_data["email_digests"]
        )
        return self.get(request)


class DigestUnsubscribeView(APIView):
    """The link in every digest: turns that user's digests off, no login needed."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: NotificationSettingsSerializer})
    def get(self, request: Request, token: str) -> Response:
        """Turn off the e-mail digests of the user the signed link names."""
        if not notifications.unsubscribe_by_token(token):
            raise Http404("this unsubscribe link is not valid")
        return Response({"email_digests": False})


class SearchView(APIView):
    @extend_schema(
        parameters=[SearchQuerySerializer],
        responses={
            200: SearchPageSerializer,
            404: OpenApiResponse(
                ErrorSerializer, description="`room_not_found`: `room` is not one of the user's"
            ),
        },
    )
    def get(self, request: Request) -> Response:
        """Search the messages of your rooms: ranked, with highlighted snippets."""
        query = SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        if "room" in data:
            room_for_request(request, data["room"])  # one of the user's, or 404
        offset, limit = data.get("cursor", 0), data["limit"]
        filters = search.SearchFilters(
            room_id=data.get("room"),
            author_id=search_author_id(data.get("from")),
            before=data.get("before"),
            after=data.get("after"),
        )
        hits, has_more = search.message_search(
            user=request.user, query=data["q"], filters=filters, offset=offset, limit=limit
        )
        return Response(
            {
                "results": [
                    {
                        "message": protocol.message_payload(hit.message),
                        "room": {"id": str(hit.message.room_id), "name": hit.message.room.name},
                        "snippet": hit.snippet,
                        "rank": hit.rank,
                    }
                    for hit in hits
                ],
                "next": str(offset + limit) if has_more else None,
            }
        )


def search_author_id(value: str | None) -> int | None:
    """`from=`: a user id or a username; an unknown one finds nothing (id 0)."""
    if value is None:
        return None
    users = get_user_model().objects
    by_id = value.isdigit() and len(value) <= 18  # beyond: no id, and too big for a column
    found = users.filter(pk=int(value)) if by_id else users.filter(username=value)
    return next(iter(found.values_list("pk", flat=True)), 0)


class AttachmentUploadView(APIView):
    parser_classes = [MultiPartParser]
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={201: AttachmentSerializer},
    )
    def post(self, request: Request, room_id) -> Response:
        """Upload a file (members; at most CHAT_MAX_UPLOAD_BYTES; no programs) for a message:
        send its id in the message's `attachments`."""
        room = room_for_request(request, room_id)
        body = AttachmentUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        attachment = attachments.attachment_store(
            room=room, uploader=request.user, upload=body.validated_data["file"]
        )
        return Response(attachments.attachment_payload(attachment), status=status.HTTP_201_CREATED)


class AttachmentDownloadView(APIView):
    thumbnail = False

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                description="the file: inline for images, a download for anything else"
            )
        }
    )
    def get(self, request: Request, attachment_id: int):
        """The file, for members of its room (not once its message is deleted)."""
        attachment = attachments.attachment_for_download(
            attachment_id=attachment_id, user=request.user
        )
        opened = attachments.attachment_file_open(attachment, thumbnail=self.thumbnail)
        image = self.thumbnail or attachment.content_type in attachments.IMAGE_TYPES
        response = FileResponse(
            opened,
            content_type="image/jpeg" if self.thumbnail else attachment.content_type,
            as_attachment=not image,
            filename=attachment.name,
        )
        response["X-Content-Type-Options"] = "nosniff"
        # Opened by itself, the file runs nothing and embeds nothing.
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response


class RoomPresenceView(APIView):
    @extend_schema(responses=PresenceSerializer)
    def get(self, request: Request, room_id) -> Response:
        """Members with at least one open socket to the room, on any server process."""
        room = room_for_request(request, room_id)
        online = online_members(room=room)
        return Response({"online": [{"id": u.pk, "username": u.username} for u in online]})


class DirectRoomView(APIView):
    throttle_classes = [ChatWriteThrottle]

    @extend_schema(
        request=DirectRoomSerializer,
        responses={
            200: RoomDetailSerializer,
            201: RoomDetailSerializer,
            404: OpenApiResponse(ErrorSerializer, description="`user_not_found`"),
        },
    )
    def post(self, request: Request) -> Response:
        """The 1:1 room with `user_id`: the existing one (200) or a new one (201)."""
        body = DirectRoomSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        other = active_user(body.validated_data["user_id"])
        room, created = services.direct_room_get_or_create(user=request.user, other=other)
        room = selectors.room_detail(user=request.user, room_id=room.pk)
        return Response(
            RoomDetailSerializer(room).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RecordRoomView(APIView):
    @extend_schema(
        responses={
            200: RoomDetailSerializer,
            404: OpenApiResponse(ErrorSerializer, description="`record_not_found`"),
        },
    )
    def get(self, request: Request, record_type: str, record_id: str) -> Response:
        """The chat room of a CRM record ("<app_label>.<model>" and its primary key), made on
        first use, for a user the record's access policy lets see it (404 otherwise)."""
        room = records.record_room_for_user(
            user=request.user, type_name=record_type, record_id=record_id
        )
        room = selectors.room_detail(user=request.user, room_id=room.pk)
        context = last_messages_context([room], viewer=request.user)
        return Response(RoomDetailSerializer(room, context=context).data)


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
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "api-key":  # a service account's (apikeys)
            check = authenticate_api_key(credentials.strip())
        elif scheme.lower() == "bearer" and credentials.strip():
            check = authenticate_token(credentials.strip())
        else:
            return Rejection.AUTHENTICATION_REQUIRED
        if check.refusal is not None:
            return check.refusal
        refusal = room_for_connection(user=check.user, room_id=room_id)[1]
        return websocket_refusal(refusal) if refusal is not None else None
