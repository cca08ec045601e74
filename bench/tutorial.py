"""The control: the Channels tutorial's async chat consumer, as the tutorial writes it.

https://channels.readthedocs.io/en/latest/tutorial/part_3.html — no authentication, no
database: join the room's group, group_send every received message to the group, forward
every group message to the socket (one json.dumps per receiver, as in the tutorial).
Routed only by bench.asgi, at /ws/tutorial/<room_name>/.
"""

import json

from channels.generic.websocket import AsyncWebsocketConsumer


class TutorialChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"

        # Join room group
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)

        await self.accept()

    async def disconnect(self, close_code):
        # Leave room group
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # Receive message from WebSocket
    async def receive(self, text_data):
        text_data_json = json.loads(text_data)
        message = text_data_json["message"]

        # Send message to room group
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "message": message}
        )

    # Receive message from room group
    async def chat_message(self, event):
        message = event["message"]

        # Send message to WebSocket
        await self.send(text_data=json.dumps({"message": message}))
