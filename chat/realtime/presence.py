"""Who is online in a room, shared by every server process.

Each open socket is an entry "<user id>:<connection id>" with an expiry. A user is online in a
room while at least one entry lives (several tabs count once). Entries are renewed by their
server process's watchdog every few seconds, so the users of a killed process expire and go
offline by themselves (CHAT_PRESENCE_TTL_SECONDS). With REDIS_URL the entries live in Redis
(one sorted set per room, scored by expiry); without it, in this process's memory.

With several Redis servers a room's set lives on the server of the room's group
(chat.realtime.shards): the room's presence depends on the server its sockets already depend
on, and no more; one server down leaves the other rooms' presence whole.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from django.conf import settings

from chat.realtime.shards import group_shard, redis_urls

REDIS_POOL_SIZE = 20  # per process: presence calls are short, a few connections serve many
REDIS_POOL_WAIT_SECONDS = 5.0

# Atomically: drop this user's expired entries, add or remove ours, count the user's entries.
# Other users' expired entries stay: the watchdog removes them and announces those users
# offline (dropping them here would leave them "online" on every screen).
_CHANGE_SCRIPT = """
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  if string.sub(member, 1, #ARGV[4]) == ARGV[4] then redis.call('ZREM', KEYS[1], member) end
end
if ARGV[5] == 'join' then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
else
  redis.call('ZREM', KEYS[1], ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
local count = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 1, #ARGV[4]) == ARGV[4] then count = count + 1 end
end
return count
"""


def room_shard(room_id: uuid.UUID) -> int:
    """The Redis server (index in REDIS_URL) of the room's group, and so of its presence."""
    from chat.realtime.delivery import room_group_name

    return group_shard(room_group_name(room_id))


def _key(room_id: uuid.UUID) -> str:
    return f"{settings.CHANNEL_LAYER_PREFIX}:presence:{room_id.hex}"


def _entry(user_id: int, connection_id: str) -> str:
    return f"{user_id}:{connection_id}"


def _user_of(entry: str | bytes) -> int:
    if isinstance(entry, bytes):
        entry = entry.decode()
    return int(entry.split(":", 1)[0])


class MemoryPresence:
    """One process: entries in a dict (room → entry → expiry)."""

    def __init__(self) -> None:
        self.rooms: dict[uuid.UUID, dict[str, float]] = {}

    def _live(self, room_id: uuid.UUID) -> dict[str, float]:
        return self.rooms.setdefault(room_id, {})

    async def change(self, room_id, user_id: int, connection_id: str, *, join: bool) -> int:
        entries = self._live(room_id)
        entry = _entry(user_id, connection_id)
        if join:
            entries[entry] = float("inf")  # dies with this process, never needs renewing
        else:
            entries.pop(entry, None)
        return sum(1 for e in entries if _user_of(e) == user_id)

    async def renew(self, sockets: list[tuple[uuid.UUID, int, str]]) -> None:
        pass

    async def expired_users(self, room_id) -> set[int]:
        return set()  # entries of this process are removed when their sockets close

    def online_user_ids(self, room_id) -> set[int]:
        return {_user_of(entry) for entry in self._live(room_id)}


class RedisPresence:
    """Many processes: one sorted set per room in Redis, scored by expiry time."""

    def __init__(self) -> None:
        self._clients: dict[tuple[asyncio.AbstractEventLoop, str], object] = {}

    def _client(self, room_id):
        """The client of the room's Redis server, for the running event loop."""
        from redis.asyncio import BlockingConnectionPool, Redis

        url = redis_urls()[room_shard(room_id)]
        key = (asyncio.get_running_loop(), url)
        if key not in self._clients:
            # Blocking: a burst of handshakes waits for a free connection instead of failing
            # with redis-py's "Too many connections" past its default pool of 100.
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=REDIS_POOL_SIZE,
                timeout=REDIS_POOL_WAIT_SECONDS,
                socket_connect_timeout=2,
                socket_timeout=5,
            )
            self._clients[key] = Redis(connection_pool=pool)
        return self._clients[key]

    async def change(self, room_id, user_id: int, connection_id: str, *, join: bool) -> int:
        now = time.time()
        ttl = settings.CHAT_PRESENCE_TTL_SECONDS
        return await self._client(room_id).eval(
            _CHANGE_SCRIPT,
            1,
            _key(room_id),
            now,
            now + ttl,
            _entry(user_id, connection_id),
            f"{user_id}:",
            "join" if join else "leave",
            int(ttl) + 60,
        )

    async def renew(self, sockets: list[tuple[uuid.UUID, int, str]]) -> None:
        """One pipeline per Redis server; every server is renewed even if one fails."""
        by_shard: dict[int, list] = {}
        for socket in sockets:
            by_shard.setdefault(room_shard(socket[0]), []).append(socket)
        results = await asyncio.gather(
            *(self._renew_on_one_server(entries) for entries in by_shard.values()),
            return_exceptions=True,
        )
        for error in results:
            if error is not None:
                raise error

    async def _renew_on_one_server(self, sockets: list[tuple[uuid.UUID, int, str]]) -> None:
        ttl = settings.CHAT_PRESENCE_TTL_SECONDS
        expiry = time.time() + ttl
        async with self._client(sockets[0][0]).pipeline(transaction=False) as pipe:
            for room_id, user_id, connection_id in sockets:
                pipe.zadd(_key(room_id), {_entry(user_id, connection_id): expiry})
            # As a join does: a quiet room's set must not expire under its live entries, nor
            # be made again by ZADD without an expiry (left for ever once its sockets are gone).
            for room_id in {room_id for room_id, _, _ in sockets}:
                pipe.expire(_key(room_id), int(ttl) + 60)
            await pipe.execute()

    async def expired_users(self, room_id) -> set[int]:
        """Remove entries whose process stopped renewing them; return users now offline."""
        client, key, now = self._client(room_id), _key(room_id), time.time()
        expired = await client.zrangebyscore(key, "-inf", now)
        if not expired:
            return set()
        await client.zrem(key, *expired)
        still_online = {_user_of(e) for e in await client.zrangebyscore(key, now, "+inf")}
        return {_user_of(e) for e in expired} - still_online

    def online_user_ids(self, room_id) -> set[int]:
        from redis import Redis

        url = redis_urls()[room_shard(room_id)]
        client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        try:
            entries = client.zrangebyscore(_key(room_id), time.time(), "+inf")
        finally:
            client.close()
        return {_user_of(entry) for entry in entries}


_memory = MemoryPresence()
_redis = RedisPresence()


def presence_store() -> MemoryPresence | RedisPresence:
    return _redis if settings.REDIS_URL else _memory


def online_members(*, room) -> list:
    """Members of the room with at least one open socket, on any server process."""
    from django.contrib.auth import get_user_model

    online_ids = presence_store().online_user_ids(room.pk)
    return list(
        get_user_model()
        .objects.filter(pk__in=online_ids, chat_memberships__room=room)
        .order_by("username")
    )
