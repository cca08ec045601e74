"""The load generator: asyncio WebSocket clients that time every delivery.

Each chat message's text is `<tag>|<seq>|<send time, monotonic ns>`, so a receiver in this
same process computes latency = receive time - send time with one clock, and counts which
(tag, seq) it got. Loss = expected deliveries (messages sent x members of the room, the
sender's own copy included) - distinct deliveries received. A product receiver closed with
1013 reconnects and recovers what it missed with `chat.sync` (`after=<last id>`); what it
recovers counts as delivered, at the time it arrived.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

# `"message":"` (product, compact JSON) or `"message": "` (tutorial, json.dumps defaults)
MESSAGE_RX = re.compile(r'"message": ?"([^"|]+)\|(\d+)\|(\d+)"')
ID_RX = re.compile(r'"id":(\d+)')
ERROR_CODE_RX = re.compile(r'"code":"([a-z_]+)"')
HAS_MORE_RX = re.compile(r'"has_more":(true|false)')

CONNECT_KWARGS = dict(
    compression=None,  # same for every server: no permessage-deflate
    ping_interval=None,  # idle connections stay silent
    max_queue=None,  # never apply TCP backpressure from the client side
    max_size=2**24,
    open_timeout=60,
    close_timeout=2,
)


class HandshakeRefused(Exception):
    def __init__(self, code: str, close_code: int | None = None):
        super().__init__(code)
        self.code = code
        self.close_code = close_code


def percentile(sorted_values: list, q: float):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


@dataclass
class TagStats:
    messages_sent: int = 0
    expected: int = 0
    received: int = 0
    duplicates: int = 0
    recovered: int = 0
    latencies_ns: list = field(default_factory=list)
    first_send: int | None = None
    last_send: int | None = None
    last_receive: int | None = None


class Tally:
    """Everything the clients of one process saw, per tag (a tag = one step of a scenario)."""

    def __init__(self) -> None:
        self.tags: dict[str, TagStats] = defaultdict(TagStats)
        self.errors: Counter = Counter()
        self.closes: Counter = Counter()
        self.reconnects = 0

    def on_send(self, tag: str, fanout: int) -> int:
        stats = self.tags[tag]
        seq = stats.messages_sent
        stats.messages_sent += 1
        stats.expected += fanout
        now = time.monotonic_ns()
        if stats.first_send is None:
            stats.first_send = now
        stats.last_send = now
        return seq

    def summary(self, tag: str) -> dict:
        s = self.tags[tag]
        lat = sorted(s.latencies_ns)
        ms = lambda v: None if v is None else round(v / 1e6, 2)  # noqa: E731
        return {
            "messages_sent": s.messages_sent,
            "expected_deliveries": s.expected,
            "deliveries": s.received,
            "lost": s.expected - s.received,
            "recovered": s.recovered,
            "duplicates": s.duplicates,
            "p50_ms": ms(percentile(lat, 0.50)),
            "p99_ms": ms(percentile(lat, 0.99)),
            "max_ms": ms(lat[-1] if lat else None),
        }


class Client:
    """One WebSocket connection: a reader task records deliveries into the tally."""

    def __init__(
        self,
        url: str,
        tally: Tally,
        *,
        product: bool,
        fanout: int = 1,
        recover: bool = True,
        headers: dict | None = None,
    ):
        self.url = url
        self.tally = tally
        self.product = product
        self.fanout = fanout  # deliveries one message of this client's room should produce
        self.recover = recover and product
        self.headers = headers
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.seen: dict[str, set] = defaultdict(set)
        self.last_id = 0
        self.waiting: dict[tuple[str, int], asyncio.Future] = {}
        self.stopping = False
        self.close_code: int | None = None
        self.established: dict | None = None

    async def open(self, timeout: float = 60.0) -> float:  # noqa: ASYNC109
        """Connect; for the product, wait for `connection.established`. Returns seconds."""
        started = time.monotonic()
        self.ws = await asyncio.wait_for(
            connect(self.url, additional_headers=self.headers, **CONNECT_KWARGS), timeout
        )
        if self.product:
            first = await asyncio.wait_for(self.ws.recv(), timeout)
            frame = json.loads(first)
            if frame.get("type") != "connection.established":
                code = frame.get("code", frame.get("type"))
                await self.ws.close()
                raise HandshakeRefused(str(code))
            self.established = frame
        return time.monotonic() - started

    def start_reading(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def send_chat(self, tag: str) -> tuple[str, int]:
        seq = self.tally.on_send(tag, self.fanout)
        await self.ws.send(
            f'{{"type":"chat.message","message":"{tag}|{seq}|{time.monotonic_ns()}"}}'
        )
        return tag, seq

    async def send_and_wait(self, tag: str, timeout: float = 30.0) -> float:  # noqa: ASYNC109
        """Closed loop: send one message and wait for its own copy (the product's ack)."""
        seq = self.tally.tags[tag].messages_sent
        future = asyncio.get_running_loop().create_future()
        self.waiting[(tag, seq)] = future
        started = time.monotonic()
        await self.send_chat(tag)
        await asyncio.wait_for(future, timeout)
        return time.monotonic() - started

    def _record(self, match, now: int, recovered: bool = False) -> None:
        tag, seq = match.group(1), int(match.group(2))
        stats = self.tally.tags[tag]
        seen = self.seen[tag]
        if seq in seen:
            stats.duplicates += 1
            return
        seen.add(seq)
        stats.received += 1
        stats.recovered += recovered
        stats.latencies_ns.append(now - int(match.group(3)))
        stats.last_receive = now
        if self.waiting:
            future = self.waiting.pop((tag, seq), None)
            if future is not None and not future.done():
                future.set_result(None)

    async def _read(self) -> None:
        while True:
            try:
                while True:
                    frame = await self.ws.recv()
                    now = time.monotonic_ns()
                    match = MESSAGE_RX.search(frame)
                    if match is not None and not frame.startswith('{"type":"chat.history"'):
                        self._record(match, now)
                        if self.product:
                            self.last_id = int(ID_RX.search(frame).group(1))
                    elif frame.startswith('{"type":"error"'):
                        code = ERROR_CODE_RX.search(frame)
                        self.tally.errors[code.group(1) if code else "?"] += 1
                        for future in self.waiting.values():
                            if not future.done():
                                future.set_exception(RuntimeError(frame))
                        self.waiting.clear()
                    elif frame.startswith('{"type":"chat.history"'):
                        await self._recovered_page(frame, now)
            except ConnectionClosed as closed:
                self.close_code = closed.rcvd.code if closed.rcvd else None
                if self.stopping:
                    return
                self.tally.closes[str(self.close_code)] += 1
                if not (self.recover and self.close_code == 1013):
                    return
            # Closed with 1013 (try again later): reconnect and recover with after=<last id>.
            try:
                await asyncio.sleep(0.1 + random.random() * 0.2)
                await self.open()
                self.tally.reconnects += 1
                await self.ws.send(json.dumps({"type": "chat.sync", "after": self.last_id}))
            except (OSError, TimeoutError, WebSocketException, HandshakeRefused):
                self.tally.closes["reconnect_failed"] += 1
                return

    async def _recovered_page(self, frame: str, now: int) -> None:
        for match in MESSAGE_RX.finditer(frame):
            self._record(match, now, recovered=True)
        ids = ID_RX.findall(frame)
        if ids:
            self.last_id = max(self.last_id, max(int(i) for i in ids))
        more = HAS_MORE_RX.search(frame)
        if more and more.group(1) == "true":
            await self.ws.send(json.dumps({"type": "chat.sync", "after": self.last_id}))

    async def close(self) -> None:
        self.stopping = True
        if self.ws is not None:
            try:
                await self.ws.close()
            except Exception:
                pass
        if self.reader is not None:
            self.reader.cancel()
            try:
                await self.reader
            except (asyncio.CancelledError, Exception):
                pass


async def open_clients(clients: list[Client], concurrency: int = 50, timeout: float = 60.0) -> dict:  # noqa: ASYNC109
    """Open clients with at most `concurrency` handshakes in flight; start their readers."""
    semaphore = asyncio.Semaphore(concurrency)
    durations: list[float] = []
    failures: Counter = Counter()

    async def one(client: Client) -> None:
        async with semaphore:
            try:
                durations.append(await client.open(timeout))
                client.start_reading()
            except HandshakeRefused as refused:
                failures[f"refused:{refused.code}"] += 1
            except InvalidStatus as error:
                failures[f"http_{error.response.status_code}"] += 1
            except (OSError, TimeoutError, WebSocketException) as error:
                failures[type(error).__name__] += 1

    started = time.monotonic()
    await asyncio.gather(*(one(c) for c in clients))
    elapsed = time.monotonic() - started
    durations.sort()
    return {
        "attempted": len(clients),
        "opened": len(durations),
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "seconds": round(elapsed, 3),
        "handshakes_per_s": round(len(durations) / elapsed, 1) if elapsed else None,
        "handshake_p50_ms": _ms(percentile(durations, 0.5)),
        "handshake_p99_ms": _ms(percentile(durations, 0.99)),
    }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


async def close_clients(clients: list[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def paced_sender(
    client: Client, tag: str, rate: float, duration: float, phase: float = 0.0
) -> None:
    """Send `rate` messages/s for `duration` s on a fixed schedule (catching up if late)."""
    loop = asyncio.get_running_loop()
    count = round(rate * duration)
    start = loop.time() + phase
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await client.send_chat(tag)
        except ConnectionClosed:
            await asyncio.sleep(0.2)  # the reader is reconnecting; the message counts as lost


async def drain(tally: Tally, tags: list[str], quiet: float = 1.0, limit: float = 15.0) -> None:
    """Wait until every expected delivery arrived, or nothing arrived for `quiet` seconds."""
    deadline = time.monotonic() + limit
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(tally.tags[t].received for t in tags)
        if total >= sum(tally.tags[t].expected for t in tags):
            return
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return
        await asyncio.sleep(0.05)
