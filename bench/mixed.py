"""S6, the mixed room (issue 17): messages, reactions, read markers and typing in one room.

S1's room (100 receivers + 1 sender, all members) gets one kind of event at a time, each at the
same rate of events into the room for the same seconds, then all four together:

- messages: `chat.message` from the sender, every socket gets the message (as S1);
- reactions: member k % 101 adds 👍 to the k-th message of the messages phase (the mixed phase
  takes the first ones back), so a message has at most one reaction and the count in
  `chat.message.reactions` (1 or 0) names the operation; every socket of the room gets it;
- reads: member k % 101 moves its read marker along the messages of the messages phase (always
  forward); the server coalesces a socket's reads to one a second, so how many `read` frames
  arrive depends on timing: what must hold is that every socket ends with every reader's last
  marker;
- typing: member k % 101 says it is typing or has stopped, alternately (best effort: the server
  relays at most once a second per member; only counted).

Per phase: deliveries, loss (messages and reactions: expected - received; reads: readers whose
last marker did not reach every socket), latency of messages and reactions (send -> receive,
one clock), and the server's CPU per delivered frame, so a reaction's and a read's cost can be
set against a message's measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict

from websockets.exceptions import ConnectionClosed

from bench.loadgen import ID_RX, MESSAGE_RX, Client, close_clients, open_clients, percentile
from bench.scenarios import S1_RECEIVERS, Context, _cpu_fields, _window, wait_server_idle

FANOUT = S1_RECEIVERS + 1
RATE, RATE_QUICK = 100, 50  # events/s into the room, each delivered to 101 sockets
SECONDS, SECONDS_QUICK = 6.0, 3.0
EMOJI = "👍"


class MixedTally:
    """What the clients saw of the non-message events, keyed so each delivery is counted once."""

    def __init__(self) -> None:
        self.sent_ns: dict[tuple, int] = {}  # (kind, ...) -> send time
        self.received: dict[str, int] = Counter()  # kind -> deliveries
        self.latencies_ns: dict[str, list[int]] = defaultdict(list)
        self.last_read: dict[int, dict[int, int]] = defaultdict(dict)  # socket -> reader -> id


class MixedClient(Client):
    """A product socket that also records reactions, reads and typing, and the ids of messages."""

    def __init__(self, url: str, ctx: Context, mixed: MixedTally, index: int) -> None:
        super().__init__(url, ctx.tally, product=True, fanout=FANOUT, recover=False)
        self.mixed = mixed
        self.index = index
        self.message_ids: dict[tuple[str, int], int] = {}  # (tag, seq) -> stored id

    async def _read(self) -> None:
        try:
            while True:
                raw = await self.ws.recv()
                self._dispatch(raw, time.monotonic_ns())
        except ConnectionClosed as closed:
            if not self.stopping:
                self.tally.closes[str(closed.rcvd.code if closed.rcvd else None)] += 1

    def _dispatch(self, raw: str, now: int) -> None:
        if raw.startswith('{"type":"chat.message",'):
            match = MESSAGE_RX.search(raw)
            if match is not None:
                self._record(match, now)
                self.message_ids[(match.group(1), int(match.group(2)))] = int(
                    ID_RX.search(raw).group(1)
                )
        elif raw.startswith('{"type":"chat.message.reactions"'):
            frame = json.loads(raw)
            counts = [r["count"] for r in frame["reactions"] if r["emoji"] == EMOJI]
            self._event("reaction", ("reaction", frame["id"], counts[0] if counts else 0), now)
        elif raw.startswith('{"type":"read"'):
            frame = json.loads(raw)
            reader, message_id = frame["user"]["id"], frame["message_id"]
            self.mixed.last_read[self.index][reader] = message_id
            self._event("read", ("read", reader, message_id), now)
        elif raw.startswith('{"type":"typing"'):
            self.mixed.received["typing"] += 1
        elif raw.startswith('{"type":"error"'):
            self.tally.errors[json.loads(raw).get("code", "?")] += 1

    def _event(self, kind: str, key: tuple, now: int) -> None:
        self.mixed.received[kind] += 1
        sent = self.mixed.sent_ns.get(key)
        if sent is not None:
            self.mixed.latencies_ns[kind].append(now - sent)


async def s6_mixed(ctx: Context) -> dict:
    mixed = MixedTally()
    clients = [MixedClient(ctx.product_url("s1", i), ctx, mixed, i) for i in range(FANOUT)]
    opened = await open_clients(clients, concurrency=25)
    if opened["failed"]:
        await close_clients(clients)
        return {"error": f"could not open clients: {opened}"}
    user_ids = [ctx.data["users"][i]["id"] for i in range(FANOUT)]
    rate = RATE_QUICK if ctx.quick else RATE
    seconds = SECONDS_QUICK if ctx.quick else SECONDS
    count = round(rate * seconds)
    run = Run(ctx, clients, mixed, user_ids, rate, seconds)
    await run.phase("warm-up", messages=20)
    quarter = count // 4
    phases = {"messages": await run.phase("messages", messages=count)}
    phases["reactions"] = await run.phase("reactions", reactions=run.adds(count))
    phases["reads"] = await run.phase("reads", reads=run.reads(count, 0, count - quarter))
    phases["typing"] = await run.phase("typing", typing=count)
    phases["mixed"] = await run.phase(
        "mixed",
        messages=quarter,
        reactions=run.removes(quarter),
        reads=run.reads(quarter, count - quarter, count),
        typing=quarter,
    )
    await close_clients(clients)
    per_delivery = {k: v["server_cpu_us_per_delivery"] for k, v in phases.items()}
    return {
        "rate_events_per_s": rate,
        "seconds_per_phase": seconds,
        "room_sockets": FANOUT,
        "phases": phases,
        "cost_vs_message": {
            kind: round(per_delivery[kind] / per_delivery["messages"], 2)
            for kind in ("reactions", "reads", "typing")
            if per_delivery[kind] and per_delivery["messages"]
        },
        "zero_loss": all(p["lost"] == 0 for p in phases.values()),
        "closes": dict(ctx.tally.closes),
        "errors": dict(ctx.tally.errors),
    }


class Run:
    """Sends one phase's events on a fixed schedule, waits for them, and sums up what arrived."""

    def __init__(self, ctx, clients, mixed, user_ids, rate, seconds) -> None:
        self.ctx, self.clients, self.mixed = ctx, clients, mixed
        self.user_ids, self.rate, self.seconds = user_ids, rate, seconds
        self.targets: list[int] = []  # stored ids of the messages phase, oldest first
        self.typing_on: dict[int, bool] = {}

    def adds(self, n: int) -> list[tuple]:
        """Member k % 101 reacts to the k-th target: every target at most once."""
        return [("reaction.add", k % FANOUT, self.targets[k]) for k in range(n)]

    def removes(self, n: int) -> list[tuple]:
        """The same members take back their reactions to the first n targets."""
        return [("reaction.remove", k % FANOUT, self.targets[k]) for k in range(n)]

    def reads(self, n: int, start: int, stop: int) -> list[tuple]:
        """n reads spread over targets[start:stop]: member k % 101 reads the targets in order,
        so each member's marker only moves forward (from phase to phase too, with rising start)."""
        return [
            ("read", k % FANOUT, self.targets[start + k * (stop - start) // n]) for k in range(n)
        ]

    async def phase(self, name, messages=0, reactions=(), reads=(), typing=0) -> dict:
        await wait_server_idle(self.ctx)
        tag = f"s6{name[:3]}{uuid.uuid4().hex[:6]}"
        received_before = dict(self.mixed.received)
        latencies_before = {k: len(v) for k, v in self.mixed.latencies_ns.items()}
        ops = self._schedule(tag, messages, reactions, reads, typing)
        before = _window(self.ctx)
        await self._send(ops, len(ops) / self.seconds)
        expected_reactions = len(reactions) * FANOUT
        readers = await self._wait(tag, expected_reactions, received_before)
        result = self._summary(
            tag, name, before, received_before, latencies_before, readers, expected_reactions
        )
        self.ctx.log(
            f"    S6 {name:9s} {result['deliveries']:6d} deliveries lost {result['lost']} "
            f"msg p99 {result['message_p99_ms']} reaction p99 {result['reaction_p99_ms']} ms "
            f"cpu/delivery {result['server_cpu_us_per_delivery']} µs"
        )
        if name == "messages":
            sender = self.clients[0]
            self.targets = [
                sender.message_ids[(tag, seq)]
                for seq in range(messages)
                if (tag, seq) in sender.message_ids
            ]
        return result

    def _schedule(self, tag, messages, reactions, reads, typing) -> list:
        """Interleaved operations: (kind, client index, argument)."""
        lanes = [
            [("message", 0, tag)] * messages,
            list(reactions),
            list(reads),
            [("typing", k % FANOUT, None) for k in range(typing)],
        ]
        timed = []
        for lane in lanes:  # spread each lane evenly over the phase, then merge by time
            timed += [((i + 0.5) / len(lane), op) for i, op in enumerate(lane)]
        return [op for _, op in sorted(timed, key=lambda pair: pair[0])]

    async def _send(self, ops: list, rate: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, (kind, index, argument) in enumerate(ops):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send_one(kind, self.clients[index], index, argument)

    async def _send_one(self, kind, client, index, argument) -> None:
        if kind == "message":
            return await client.send_chat(argument)
        if kind.startswith("reaction."):
            count = 1 if kind == "reaction.add" else 0
            self.mixed.sent_ns[("reaction", argument, count)] = time.monotonic_ns()
            frame = {"type": kind, "message_id": argument, "emoji": EMOJI}
        elif kind == "read":
            self.mixed.sent_ns[("read", self.user_ids[index], argument)] = time.monotonic_ns()
            frame = {"type": "read", "message_id": argument}
        else:
            self.typing_on[index] = not self.typing_on.get(index, False)
            frame = {"type": "typing", "is_typing": self.typing_on[index]}
        await client.ws.send(json.dumps(frame))

    async def _wait(self, tag, expected_reactions, received_before, limit=30.0) -> dict:
        """Until every message and reaction arrived and every reader's last marker reached
        every socket, or nothing more arrived for 2 s (the read coalescing flushes after 1 s)."""
        deadline, last, last_change = time.monotonic() + limit, None, time.monotonic()
        while time.monotonic() < deadline:
            readers = self._readers_unseen()
            stats = self.ctx.tally.tags[tag]
            progress = (stats.received, tuple(self.mixed.received.values()))
            done = stats.received >= stats.expected and not readers
            reactions = self.mixed.received["reaction"] - received_before.get("reaction", 0)
            if done and reactions >= expected_reactions:
                break
            if progress != last:
                last, last_change = progress, time.monotonic()
            elif time.monotonic() - last_change > 2.0:
                break
            await asyncio.sleep(0.05)
        return self._readers_unseen()

    def _readers_unseen(self) -> dict[int, int]:
        """Reader -> how many sockets have not seen its last marker."""
        last_sent: dict[int, int] = {}
        for _kind, reader, message_id in (k for k in self.mixed.sent_ns if k[0] == "read"):
            last_sent[reader] = max(last_sent.get(reader, 0), message_id)
        unseen = Counter()
        for index in range(FANOUT):
            seen = self.mixed.last_read[index]
            for reader, message_id in last_sent.items():
                if seen.get(reader, 0) < message_id:
                    unseen[reader] += 1
        return dict(unseen)

    def _summary(
        self, tag, name, before, received_before, latencies_before, readers, expected_reactions
    ) -> dict:
        messages = self.ctx.tally.summary(tag)
        got = {
            kind: self.mixed.received[kind] - received_before.get(kind, 0)
            for kind in ("reaction", "read", "typing")
        }
        lost_reactions = max(0, expected_reactions - got["reaction"])
        deliveries = messages["deliveries"] + sum(got.values())
        reaction_latency = sorted(
            self.mixed.latencies_ns["reaction"][latencies_before.get("reaction", 0) :]
        )
        ms = lambda ns: None if ns is None else round(ns / 1e6, 2)  # noqa: E731
        return {
            "message_deliveries": messages["deliveries"],
            "reaction_deliveries": got["reaction"],
            "read_deliveries": got["read"],
            "typing_deliveries": got["typing"],
            "deliveries": deliveries,
            "lost_messages": messages["lost"],
            "lost_reactions": lost_reactions,
            "readers_not_seen_everywhere": len(readers),
            "lost": messages["lost"] + lost_reactions + sum(readers.values()),
            "message_p50_ms": messages["p50_ms"],
            "message_p99_ms": messages["p99_ms"],
            "reaction_p50_ms": ms(percentile(reaction_latency, 0.5)),
            "reaction_p99_ms": ms(percentile(reaction_latency, 0.99)),
            **_cpu_fields(self.ctx, before, deliveries),
        }
