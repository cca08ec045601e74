"""Token buckets: one per connection, and per-key registries (user id, client IP) per process."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up."""

    __slots__ = ("burst", "clock", "rate", "tokens", "updated")

    def __init__(self, *, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def allow(self) -> bool:
        """Take one token if there is one."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def exhausted(self) -> bool:
        """True while no token is left (without taking one)."""
        self._refill()
        return self.tokens < 1


class BucketRegistry:
    """Buckets by key for this server process, least recently used dropped past `max_keys`.

    Per process on purpose: limits hold per server process, so N processes behind a load
    balancer allow up to N times the rate; docs/security.md says so.
    """

    def __init__(self, *, rate: float, burst: int, max_keys: int = 50_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def bucket(self, key: Hashable) -> TokenBucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(rate=self.rate, burst=self.burst)
            if len(self.buckets) > self.max_keys:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(key)
        return bucket

    def allow(self, key: Hashable) -> bool:
        return self.bucket(key).allow()

    def exhausted(self, key: Hashable) -> bool:
        bucket = self.buckets.get(key)
        return bucket is not None and bucket.exhausted()


_registries: dict[tuple[str, float, int], BucketRegistry] = {}


def registry(name: str, *, rate: float, burst: int) -> BucketRegistry:
    """The process-wide registry for one kind of limit (settings read at call time)."""
    key = (name, rate, burst)
    found = _registries.get(key)
    if found is None:
        found = _registries[key] = BucketRegistry(rate=rate, burst=burst)
    return found


def reset_all() -> None:
    """Forget every per-user and per-IP bucket of this process (tests start from a clean slate)."""
    _registries.clear()
