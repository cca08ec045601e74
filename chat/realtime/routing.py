from django.urls import path, re_path

from chat.realtime.consumers import ChatConsumer, NotFoundConsumer, TestChatConsumer

websocket_urlpatterns = [
    path("ws/chat/teste/", TestChatConsumer.as_asgi()),
    path("ws/chat/<str:room_id>/", ChatConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),  # anything else: 4404 with a reason
]
