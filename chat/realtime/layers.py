"""A lean in-memory channel layer for one server process, that never drops a message silently.

Channels' InMemoryChannelLayer is built for tests: every `group_send` starts one task and
deep-copies the message per receiver, every `receive` scans every channel for expired
messages, and a receiver whose queue is full silently loses messages. For a chat fan-out that
is O(receivers) tasks per message and O(connections) work per delivery.

Here a `group_send` puts the same (read-only) message straight into each receiver's queue.
A receiver that falls `capacity` messages behind is taken out of its groups and gets one
`layer.overflow` message instead, so its consumer can close it with a reason (1013) and the
client recovers with `after=`. Messages are shared between receivers: handlers must treat
them as read-only (ours do: they carry pre-rendered frames).
"""

from __future__ import annotations

import asyncio
import random
import string
from collections import defaultdict

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

OVERFLOW_EVENT = {"type": "layer.overflow"}


class LocalChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]

    def __init__(self, capacity: int = 1000, **kwargs) -> None:
        super().__init__(capacity=capacity, **kwargs)
        self.channels: dict[str, asyncio.Queue] = {}
        self.groups: defaultdict[str, set[str]] = defaultdict(set)
        self.groups_of: defaultdict[str, set[str]] = defaultdict(set)  # channel -> its groups
        self.overflowed: set[str] = set()

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue()  # bounded by _deliver, not here
        return queue

    def _deliver(self, channel: str, message: dict) -> bool:
        """Queue a message; on overflow, replace the rest with one overflow notice."""
        if channel in self.overflowed:
            return False
        queue = self._queue(channel)
        if queue.qsize() >= self.get_capacity(channel):
            self.overflowed.add(channel)
            self._leave_all_groups(channel)
            queue.put_nowait(OVERFLOW_EVENT)
            return False
        queue.put_nowait(message)
        return True

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        if not self._deliver(channel, message):
            raise ChannelFull(channel)

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        queue = self._queue(channel)
        try:
            return await queue.get()
        finally:
            if queue.empty() and channel not in self.overflowed and not self._in_a_group(channel):
                self.channels.pop(channel, None)

    async def new_channel(self, prefix: str = "specific.") -> str:
        suffix = "".join(random.choices(string.ascii_letters + string.digits, k=16))
        return f"{prefix}.local!{suffix}"

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.overflowed.discard(channel)
        self.groups[group].add(channel)
        self.groups_of[channel].add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        self._leave(group, channel)
        if not self._in_a_group(channel):
            self.channels.pop(channel, None)
            self.overflowed.discard(channel)

    async def group_send(self, group: str, message: dict) -> None:
        self.require_valid_group_name(group)
        for channel in list(self.groups.get(group, ())):
            self._deliver(channel, message)

    async def flush(self) -> None:
        self.channels.clear()
        self.groups.clear()
        self.groups_of.clear()
        self.overflowed.clear()

    def _in_a_group(self, channel: str) -> bool:
        return bool(self.groups_of.get(channel))

    def _leave(self, group: str, channel: str) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.discard(channel)
            if not members:
                del self.groups[group]
        groups = self.groups_of.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.groups_of[channel]

    def _leave_all_groups(self, channel: str) -> None:
        for group in list(self.groups_of.get(channel, ())):
            self._leave(group, channel)
