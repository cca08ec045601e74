"""Hot-path experiments, routed by bench.asgi only: the product's ChatConsumer with ONE change.

They exist to measure a proposed change before anyone edits chat/: S1 runs them next to the
product and the control (`--s1-variants product,control,exp-dispatch,exp-local`).

- exp-dispatch: a `chat.broadcast` event is handled without Channels' per-event
  `aclose_old_connections()` (AsyncConsumer.dispatch runs it before EVERY handler, i.e. one
  thread-pool round trip per receiver per message, although the handler touches no database).
- exp-local: exp-dispatch, plus fan-out inside the process: the sender writes the pre-rendered
  frame straight to every local socket of the room (no per-receiver channel-layer message,
  queue, deepcopy, dispatch). A single-process prototype: the real change would publish one
  layer message per room per process and fan out locally on receipt.
"""

from __future__ import annotations

from collections import defaultdict

from chat.consumers import ChatConsumer

_local_rooms: dict[str, set] = defaultdict(set)


class FastDispatchChatConsumer(ChatConsumer):
    async def dispatch(self, message):
        if message["type"] == "chat.broadcast":
            return await self.chat_broadcast(message)
        return await super().dispatch(message)


class LocalFanoutChatConsumer(FastDispatchChatConsumer):
    async def join_group(self, group_name: str) -> bool:
        joined = await super().join_group(group_name)
        if joined:
            _local_rooms[group_name].add(self)
        return joined

    async def broadcast(self, frame: str, *, except_self: bool = False) -> bool:
        message = {"type": "websocket.send", "text": frame}
        for consumer in tuple(_local_rooms.get(self.group_name, ())):
            if consumer.closing or (except_self and consumer is self):
                continue
            await consumer.base_send(message)
        return True

    async def websocket_disconnect(self, message):
        members = _local_rooms.get(self.group_name)
        if members is not None:
            members.discard(self)
            if not members:
                _local_rooms.pop(self.group_name, None)
        await super().websocket_disconnect(message)
