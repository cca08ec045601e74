"""Which Redis server (shard) carries a group, with several in REDIS_URL.

channels-redis spreads a layer over its `hosts` by a consistent hash of each name:
CRC32 & 0xFFF, cut into as many equal ranges as there are hosts (channels_redis.utils). The
pub/sub layer hashes a group's Redis channel, "<prefix>__group__<group>"; RedisChannelLayer
hashes the group's name. This module computes the same index, so that a room's sockets can
watch the one server its group lives on, and presence can live beside it; tests/test_shards.py
checks it against the layers' own functions, so an upgrade that hashes differently fails there.

Computed here rather than imported: channels-redis's `_consistent_hash` is private.
"""

from __future__ import annotations

import binascii
import functools
import uuid

from django.conf import settings

HASH_RING = 4096  # channels-redis: crc32(name) & 0xFFF


def redis_urls() -> list[str]:
    """The Redis servers of REDIS_URL, in order (a comma-separated list); none without it."""
    return _split(settings.REDIS_URL)


@functools.lru_cache(maxsize=8)
def _split(value: str) -> list[str]:
    return [url.strip() for url in value.split(",") if url.strip()]


def shard_count() -> int:
    return max(1, len(redis_urls()))


def name_shard(name: str, shards: int) -> int:
    """channels-redis's index for a name hashed over `shards` hosts."""
    if shards == 1:
        return 0
    return int((binascii.crc32(name.encode()) & 0xFFF) / (HASH_RING / shards))


def _pubsub() -> bool:
    return settings.REDIS_CHANNEL_LAYER != "core"


def _hashed_name(group: str) -> str:
    if _pubsub():
        return f"{settings.CHANNEL_LAYER_PREFIX}__group__{group}"
    return group


def group_shard(group: str) -> int:
    """The index (in REDIS_URL) of the Redis server that carries the group."""
    return name_shard(_hashed_name(group), shard_count())


def group_url(group: str) -> str:
    """The URL of the Redis server that carries the group (REDIS_URL must be set)."""
    return redis_urls()[group_shard(group)]


def pubsub_channel_on_shard(shard: int) -> str:
    """A fresh pub/sub channel name that hashes to `shard`, as `new_channel` would make one.

    A room's channel subscribes on its own shard: a random one would make every room depend on
    two servers (its group's and its channel's). A few random tries find one (1/shards each).
    """
    shards = shard_count()
    while True:
        name = f"{settings.CHANNEL_LAYER_PREFIX}specific.{uuid.uuid4().hex}"
        if name_shard(name, shards) == shard:
            return name


@functools.lru_cache(maxsize=4096)
def _group_on_shard(base: str, shard: int, shards: int, prefix: str, pubsub: bool) -> str:
    for copy in range(10_000):
        group = f"{base}.s{copy}"
        hashed = f"{prefix}__group__{group}" if pubsub else group
        if name_shard(hashed, shards) == shard:
            return group
    raise RuntimeError(f"no name for {base} on shard {shard}")  # 4096 slots: never happens


def group_on_shard(base: str, shard: int) -> str:
    """The copy of a group `base` that lives on `shard`: the same on every process.

    For groups that are not a room's (a user's notifications): each shard has its copy, so a
    socket listens on the shard of its room only; senders publish to every copy. With one
    Redis (or none) the name is `base` itself, as before.
    """
    shards = shard_count()
    if shards == 1:
        return base
    prefix, pubsub = settings.CHANNEL_LAYER_PREFIX, _pubsub()
    return _group_on_shard(base, shard, shards, prefix, pubsub)


def every_shard() -> range:
    return range(shard_count())
