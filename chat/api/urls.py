from django.urls import path

from accounts.views import ConnectionTicketView
from chat.api.views import (
    AttachmentDownloadView,
    AttachmentUploadView,
    DigestUnsubscribeView,
    DirectRoomView,
    MessageReactionsView,
    MessageSeenView,
    NotificationSettingsView,
    NotificationsReadView,
    NotificationsView,
    RecordRoomView,
    RoomAccessView,
    RoomChangesView,
    RoomDetailView,
    RoomListView,
    RoomMembersView,
    RoomMemberView,
    RoomMessagesView,
    RoomMessageView,
    RoomPresenceView,
    RoomReadView,
    RoomSettingsView,
    SearchView,
)

urlpatterns = [
    path("rooms/", RoomListView.as_view(), name="room-list"),
    path("rooms/<uuid:room_id>/", RoomDetailView.as_view(), name="room-detail"),
    path("rooms/<uuid:room_id>/messages/", RoomMessagesView.as_view(), name="room-messages"),
    path("rooms/<uuid:room_id>/members/", RoomMembersView.as_view(), name="room-members"),
    path(
        "rooms/<uuid:room_id>/members/<int:user_id>/", RoomMemberView.as_view(), name="room-member"
    ),
    path(
        "rooms/<uuid:room_id>/messages/<int:message_id>/",
        RoomMessageView.as_view(),
        name="room-message",
    ),
    path(
        "rooms/<uuid:room_id>/messages/<int:message_id>/reactions/",
        MessageReactionsView.as_view(),
        name="message-reactions",
    ),
    path(
        "rooms/<uuid:room_id>/messages/<int:message_id>/seen/",
        MessageSeenView.as_view(),
        name="message-seen",
    ),
    path("rooms/<uuid:room_id>/settings/", RoomSettingsView.as_view(), name="room-settings"),
    path("rooms/<uuid:room_id>/changes/", RoomChangesView.as_view(), name="room-changes"),
    path("rooms/<uuid:room_id>/read/", RoomReadView.as_view(), name="room-read"),
    path("rooms/<uuid:room_id>/presence/", RoomPresenceView.as_view(), name="room-presence"),
    path("rooms/<str:room_id>/access/", RoomAccessView.as_view(), name="room-access"),
    path("direct/", DirectRoomView.as_view(), name="direct-room"),
    path(
        "records/<str:record_type>/<str:record_id>/room/",
        RecordRoomView.as_view(),
        name="record-room",
    ),
    path("search/", SearchView.as_view(), name="search"),
    path("rooms/<uuid:room_id>/attachments/", AttachmentUploadView.as_view(), name="attachments"),
    path(
        "attachments/<int:attachment_id>/",
        AttachmentDownloadView.as_view(),
        name="attachment",
    ),
    path(
        "attachments/<int:attachment_id>/thumbnail/",
        AttachmentDownloadView.as_view(thumbnail=True),
        name="attachment-thumbnail",
    ),
    path("notifications/", NotificationsView.as_view(), name="notifications"),
    path("notifications/read/", NotificationsReadView.as_view(), name="notifications-read"),
    path(
        "notifications/settings/",
        NotificationSettingsView.as_view(),
        name="notification-settings",
    ),
    path(
        "notifications/unsubscribe/<str:token>/",
        DigestUnsubscribeView.as_view(),
        name="digest-unsubscribe",
    ),
    path("ws-ticket/", ConnectionTicketView.as_view(), name="ws-ticket"),
]
