from django.urls import path

from chat.views import (
    RoomDetailView,
    RoomListView,
    RoomMembersView,
    RoomMemberView,
    RoomMessagesView,
)

urlpatterns = [
    path("rooms/", RoomListView.as_view(), name="room-list"),
    path("rooms/<uuid:room_id>/", RoomDetailView.as_view(), name="room-detail"),
    path("rooms/<uuid:room_id>/messages/", RoomMessagesView.as_view(), name="room-messages"),
    path("rooms/<uuid:room_id>/members/", RoomMembersView.as_view(), name="room-members"),
    path(
        "rooms/<uuid:room_id>/members/<int:user_id>/", RoomMemberView.as_view(), name="room-member"
    ),
]
