"""Token buckets: one per connection, and per-key registries (user id, client IP) per process."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
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


class _Attempts:
    __slots__ = ("bucket", "in_flight", "waiting")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.in_flight = 0  # attempts admitted and not yet settled, each holding a token
        self.waiting: deque[asyncio.Future] = deque()


class AttemptLimiter:
    """At most `burst` failed attempts per key (then `rate` a second), however many run at once.

    Checking a bucket before an awaited attempt and spending its token after lets every
    concurrent attempt through on the same token. Here an admitted attempt holds one of its
    key's tokens until `settle`: a failure spends it, a success gives it back. While every
    token left is held, the next attempt waits for one to settle (legitimate connects from one
    busy address are delayed by a database round trip, never refused); with no token left at
    all it is refused at once. Per process and event loop, like BucketRegistry.
    """

    def __init__(self, *, rate: float, burst: int, max_keys: int = 50_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.keys: OrderedDict[Hashable, _Attempts] = OrderedDict()

    async def admit(self, key: Hashable) -> bool:
        """True: go ahead, then `settle(key, failed=...)` (always). False: refuse the attempt."""
        attempts = self._attempts(key)
        bucket = attempts.bucket
        if bucket.exhausted():
            return False
        if not attempts.waiting and bucket.tokens - attempts.in_flight >= 1:
            attempts.in_flight += 1
            return True
        admitted = asyncio.get_running_loop().create_future()
        attempts.waiting.append(admitted)
        try:
            return await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled() and admitted.result():
                self.settle(key, failed=False)  # admitted just as its client went away
            raise

    def settle(self, key: Hashable, *, failed: bool) -> None:
        attempts = self.keys[key]
        attempts.in_flight -= 1
        if failed:
            attempts.bucket.tokens -= 1
        self._admit_waiting(attempts)

    def _admit_waiting(self, attempts: _Attempts) -> None:
        bucket = attempts.bucket
        while attempts.waiting:
            if attempts.waiting[0].done():  # its client went away while it waited
                attempts.waiting.popleft()
                continue
            if bucket.exhausted():
                admitted = False
            elif bucket.tokens - attempts.in_flight >= 1:
                admitted = True
                attempts.in_flight += 1
            else:
                return  # every token left is held: wait for the next settle
            attempts.waiting.popleft().set_result(admitted)

    def _attempts(self, key: Hashable) -> _Attempts:
        attempts = self.keys.get(key)
        if attempts is None:
            bucket = TokenBucket(rate=self.rate, burst=self.burst)
            attempts = self.keys[key] = _Attempts(bucket)
            if len(self.keys) > self.max_keys:
                oldest = next(iter(self.keys.values()))
                if not oldest.in_flight and not oldest.waiting:  # settle must find its own
                    self.keys.popitem(last=False)
        else:
            self.keys.move_to_end(key)
        return attempts


_registries: dict[tuple[str, float, int], BucketRegistry | AttemptLimiter] = {}


def registry(name: str, *, rate: float, burst: int) -> BucketRegistry:
    """The process-wide registry for one kind of limit (settings read at call time)."""
    key = (name, rate, burst)
    found = _registries.get(key)
    if found is None:
        found = _registries[key] = BucketRegistry(rate=rate, burst=burst)
    return found


def attempt_limiter(name: str, *, rate: float, burst: int) -> AttemptLimiter:
    """The process-wide AttemptLimiter for one kind of attempt (settings read at call time)."""
    key = (name, rate, burst)
    found = _registries.get(key)
    if found is None:
        found = _registries[key] = AttemptLimiter(rate=rate, burst=burst)
    return found


def reset_all() -> None:
    """Forget every per-user and per-IP bucket of this process (tests start from a clean slate)."""
    _registries.clear()
