from django.urls import path

from webhooks.api import RoomWebhooksView, RoomWebhookView

# Under /api/chat/ (crm_backend/urls.py), beside the room's other resources.
urlpatterns = [
    path("rooms/<uuid:room_id>/webhooks/", RoomWebhooksView.as_view(), name="room-webhooks"),
    path(
        "rooms/<uuid:room_id>/webhooks/<int:webhook_id>/",
        RoomWebhookView.as_view(),
        name="room-webhook",
    ),
]
