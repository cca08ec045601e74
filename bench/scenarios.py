"""The scenarios S1-S5. Each takes a Context (a running server and its seeded data)."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import random
import time
import uuid
from dataclasses import dataclass, field

from bench.loadgen import (
    Client,
    Tally,
    close_clients,
    drain,
    open_clients,
    paced_sender,
    percentile,
)
from bench.server import ServerProcess

# S1 send rates (messages/s into the room; x101 deliveries each: 100 receivers + the sender).
S1_RATES = [10, 20, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800]
S1_RATES_QUICK = [10, 30, 60, 100, 200, 400]
S1_RECEIVERS = 100
S1_P99_LIMIT_MS = 100.0
S2_ROOMS, S2_ROOM_SIZE = 50, 10
S3_CONNECTIONS = [1000, 5000]
S3_CONNECTIONS_QUICK = [200]
S3_BURST = 200
S3_ROOM_SIZE = 100  # S3 connections are spread over rooms of this many members
S5_ROOMS, S5_ROOM_SIZE = 20, 5


@dataclass
class Context:
    server: ServerProcess
    data: dict  # bench.setup_db output
    quick: bool
    layer: str
    db: str
    tally: Tally = field(default_factory=Tally)
    profile_hook: object = None  # async callable(rate) run after the S1 product ramp
    log: object = print

    def product_url(self, room_key: str, user_index: int) -> str:
        room = self.data["rooms"][room_key]
        token = self.data["users"][user_index]["token"]
        return f"{self.server.ws_url}/ws/chat/{room}/?token={token}"

    def control_url(self, room_name: str) -> str:
        return f"{self.server.ws_url}/ws/tutorial/{room_name}/"


async def wait_server_idle(
    ctx: Context, below: float = 0.15, window: float = 0.5, limit: float = 90.0
) -> bool:
    """Wait until the server uses < `below` of a CPU: the previous backlog is gone."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = ctx.server.cpu_seconds()
        await asyncio.sleep(window)
        if (ctx.server.cpu_seconds() - before) / window < below:
            return True
    return False


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def listen_overflows() -> int | None:
    """The kernel's count of connections refused because a listen queue was full (every
    listening socket of this network namespace): each one is a client's SYN resent ~1 s later."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            counters = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(counters["ListenOverflows"])
    return None


def _window(ctx: Context):
    """Server CPU seconds and load-generator CPU seconds, read together (and, under
    chat_serve, each worker's CPU seconds)."""
    return (
        ctx.server.cpu_seconds(),
        time.process_time(),
        time.monotonic(),
        ctx.server.cpu_seconds_by_pid(),
    )


def _cpu_fields(ctx: Context, before, deliveries: int) -> dict:
    server_cpu, _gen_cpu, wall, by_pid = _window(ctx)
    elapsed = wall - before[2]
    workers = {}
    if len(by_pid) > 1 and elapsed:  # chat_serve: each worker's share, the supervisor left out
        workers["worker_cpu_util"] = [
            round((cpu - before[3].get(pid, 0.0)) / elapsed, 2)
            for pid, cpu in by_pid.items()
            if pid != ctx.server.pid
        ]
    return {
        **workers,
        "server_cpu_s": round(server_cpu - before[0], 3),
        "server_cpu_us_per_delivery": round((server_cpu - before[0]) / deliveries * 1e6, 1)
        if deliveries
        else None,
        "server_cpu_util": round((server_cpu - before[0]) / elapsed, 2) if elapsed else None,
        "loadgen_cpu_util": round((time.process_time() - before[1]) / elapsed, 2)
        if elapsed
        else None,
    }


# --------------------------------------------------------------------------------------------
# S1: fan-out, one room of 100 receivers + 1 sender, rising rate


async def s1_fanout(ctx: Context, kind: str, rates: list[int] | None = None) -> dict:
    product = kind != "control"
    fanout = S1_RECEIVERS + 1
    room = _unique("s1")
    if product:
        urls = [ctx.product_url("s1", i) for i in range(fanout)]
    else:
        urls = [ctx.control_url(room)] * fanout
    clients = [Client(u, ctx.tally, product=product, fanout=fanout) for u in urls]
    opened = await open_clients(clients, concurrency=25)
    if opened["failed"]:
        await close_clients(clients)
        return {"error": f"could not open clients: {opened}"}
    sender = clients[0]
    rates = rates or (S1_RATES_QUICK if ctx.quick else S1_RATES)
    step_seconds = 2.0 if ctx.quick else 6.0
    # Warm-up: imports, thread pool, the database connection, caches.
    warm = _unique("warm")
    await paced_sender(sender, warm, 20, 1.0)
    await drain(ctx.tally, [warm], quiet=1.0, limit=10)
    steps, best = [], None
    for rate in rates:
        for attempt in (1, 2):  # a noisy machine: a failed step is tried once more
            step = await _s1_step(ctx, sender, kind, rate, attempt, step_seconds)
            steps.append(step)
            ctx.log(
                f"    S1 {kind:12s} {rate:4d} msg/s try {attempt}: "
                f"{step['deliveries_per_s']:8.0f} deliv/s p50 {step['p50_ms']} "
                f"p99 {step['p99_ms']} ms lost {step['lost']} "
                f"srv {step['server_cpu_util']} {step.get('worker_cpu_util', '')} "
                f"gen {step['loadgen_cpu_util']} "
                f"{'ok' if step['ok'] else 'FAIL'}"
            )
            if step["ok"]:
                break
            await _settle(ctx)
        if not step["ok"]:
            break
        best = step
    profile = None
    if kind == "product" and ctx.profile_hook is not None:
        profile_rate = best["rate"] if best else rates[0]
        profile = await ctx.profile_hook(
            "s1",
            lambda seconds: paced_sender(sender, _unique("prof"), profile_rate, seconds),
            f"S1 at {profile_rate} msg/s x 101 receivers",
        )
        profile["rate"] = profile_rate
    await close_clients(clients)
    return {
        "kind": kind,
        "receivers": S1_RECEIVERS,
        "deliveries_per_message": fanout,
        "step_seconds": step_seconds,
        "sustainable_rate_msgs_per_s": best["rate"] if best else 0,
        "sustainable_deliveries_per_s": best["rate"] * fanout if best else 0,
        "at_sustainable": best,
        "steps": steps,
        "profile": profile,
        "closes": dict(ctx.tally.closes),
        "errors": dict(ctx.tally.errors),
    }


async def _s1_step(ctx, sender, kind, rate, attempt, seconds) -> dict:
    tag = f"s1{kind[0]}{rate}t{attempt}{uuid.uuid4().hex[:4]}"
    before = _window(ctx)
    await paced_sender(sender, tag, rate, seconds)
    await drain(ctx.tally, [tag], quiet=1.5, limit=20)
    summary = ctx.tally.summary(tag)
    stats = ctx.tally.tags[tag]
    span = ((stats.last_receive or stats.last_send) - stats.first_send) / 1e9
    result = {
        "rate": rate,
        "attempt": attempt,
        "offered_deliveries_per_s": rate * (S1_RECEIVERS + 1),
        "deliveries_per_s": round(summary["deliveries"] / span, 1) if span > 0 else 0.0,
        **summary,
        **_cpu_fields(ctx, before, summary["deliveries"]),
    }
    result["ok"] = (
        summary["lost"] == 0
        and summary["p99_ms"] is not None
        and summary["p99_ms"] < S1_P99_LIMIT_MS
    )
    return result


async def _settle(ctx: Context, quiet: float = 1.0, limit: float = 30.0) -> None:
    """After a failed step: let the server's backlog drain before measuring again."""
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        total = sum(s.received for s in ctx.tally.tags.values())
        if total == last:
            return
        last = total
        await asyncio.sleep(quiet)


# --------------------------------------------------------------------------------------------
# S2: 50 rooms x 10 clients, each client 1 message/s


async def s2_many_rooms(ctx: Context, kind: str) -> dict:
    product = kind == "product"
    run = _unique("s2")
    clients = []
    for r in range(S2_ROOMS):
        for m in range(S2_ROOM_SIZE):
            url = (
                ctx.product_url(f"s2-{r}", r * S2_ROOM_SIZE + m)
                if product
                else ctx.control_url(f"{run}-{r}")
            )
            clients.append(Client(url, ctx.tally, product=product, fanout=S2_ROOM_SIZE))
    opened = await open_clients(clients, concurrency=50)
    if opened["failed"]:
        await close_clients(clients)
        return {"error": f"could not open clients: {opened}"}
    seconds = 5.0 if ctx.quick else 10.0
    warm = _unique("warm")
    await asyncio.gather(*(paced_sender(c, warm, 1.0, 1.0, random.random()) for c in clients))
    await drain(ctx.tally, [warm], quiet=1.0, limit=30)
    await wait_server_idle(ctx)
    tag = _unique("s2m")
    before = _window(ctx)
    await asyncio.gather(*(paced_sender(c, tag, 1.0, seconds, random.random()) for c in clients))
    await drain(ctx.tally, [tag], quiet=3.0, limit=90)
    summary = ctx.tally.summary(tag)
    stats = ctx.tally.tags[tag]
    span = ((stats.last_receive or stats.last_send) - stats.first_send) / 1e9
    await close_clients(clients)
    return {
        "kind": kind,
        "rooms": S2_ROOMS,
        "room_size": S2_ROOM_SIZE,
        "seconds": seconds,
        "messages_per_s": round(summary["messages_sent"] / span, 1) if span else None,
        "deliveries_per_s": round(summary["deliveries"] / span, 1) if span else None,
        **summary,
        **_cpu_fields(ctx, before, summary["deliveries"]),
        "ok": summary["lost"] == 0 and (summary["p99_ms"] or 1e9) <= 100,
        "errors": dict(ctx.tally.errors),
        "closes": dict(ctx.tally.closes),
    }


# --------------------------------------------------------------------------------------------
# S3: capacity — idle connections, handshakes/s, memory; bursts and stale groups on Redis


def s3_room(user_index: int) -> str:
    return f"s3-{user_index // S3_ROOM_SIZE}"


async def s3_idle(ctx: Context, kind: str, count: int) -> dict:
    product = kind == "product"
    room = _unique("s3")

    def make(i: int) -> Client:
        url = ctx.product_url(s3_room(i), i) if product else ctx.control_url(f"{room}-{s3_room(i)}")
        return Client(url, ctx.tally, product=product)

    warm = [make(i) for i in range(20)]
    await open_clients(warm, concurrency=10)
    await close_clients(warm)
    await asyncio.sleep(1.0)
    gc.collect()
    rss_before = ctx.server.rss_bytes()
    clients = [make(i) for i in range(count)]
    before, overflows_before = _window(ctx), listen_overflows()
    opened = await open_clients(clients, concurrency=100)
    cpu = _cpu_fields(ctx, before, opened["opened"])
    overflows = listen_overflows()
    await asyncio.sleep(2.0)
    rss_open = ctx.server.rss_bytes()
    started = time.monotonic()
    await close_clients(clients)
    close_seconds = time.monotonic() - started
    await asyncio.sleep(2.0)
    rss_closed = ctx.server.rss_bytes()
    return {
        "kind": kind,
        "connections": count,
        **opened,
        "server_cpu_ms_per_handshake": round(cpu["server_cpu_us_per_delivery"] / 1000, 3)
        if cpu["server_cpu_us_per_delivery"]
        else None,
        # Which side limits the rate: a generator near 1.0 cannot open sockets any faster.
        "server_cpu_util": cpu["server_cpu_util"],
        "loadgen_cpu_util": cpu["loadgen_cpu_util"],
        "listen_overflows": None if overflows is None else overflows - overflows_before,
        "server_rss_before_mb": round(rss_before / 2**20, 1),
        "server_rss_open_mb": round(rss_open / 2**20, 1),
        "server_rss_after_close_mb": round(rss_closed / 2**20, 1),
        "rss_per_connection_kb": round(
            (rss_open - rss_before) / max(opened["opened"], 1) / 1024, 1
        ),
        "close_all_seconds": round(close_seconds, 2),
    }


async def s3_burst(ctx: Context, kind: str, count: int = S3_BURST) -> dict:
    """`count` clients connecting at the same moment: how many handshakes fail?"""
    product = kind == "product"
    room = _unique("s3b")
    clients = [
        Client(
            ctx.product_url(s3_room(i), i) if product else ctx.control_url(f"{room}-{s3_room(i)}"),
            ctx.tally,
            product=product,
        )
        for i in range(count)
    ]
    opened = await open_clients(clients, concurrency=count)
    await close_clients(clients)
    return {"kind": kind, **opened}


async def s3_stale(ctx: Context, redis_prefix: str, count: int) -> dict:
    """Connect `count` members, drop them all at once, count Redis subscriptions left over."""
    from redis.asyncio import Redis

    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        pattern = f"{redis_prefix}*"
        baseline = len(await redis.pubsub_channels(pattern))
        clients = [
            Client(ctx.product_url(s3_room(i), i), ctx.tally, product=True) for i in range(count)
        ]
        opened = await open_clients(clients, concurrency=100)
        while_open = len(await redis.pubsub_channels(pattern))
        # All at once: abort every TCP connection without a close handshake.
        for c in clients:
            c.stopping = True
            if c.ws is not None:
                c.ws.transport.abort()
        await close_clients(clients)
        left, waited = None, 0.0
        for _ in range(20):
            await asyncio.sleep(0.5)
            waited += 0.5
            left = len(await redis.pubsub_channels(pattern))
            if left <= baseline:
                break
        # A message to the room must still work and reach a fresh member.
        probe = Client(ctx.product_url(s3_room(0), 0), ctx.tally, product=True, fanout=1)
        await probe.open()
        probe.start_reading()
        tag = _unique("s3p")
        await probe.send_and_wait(tag, timeout=10)
        await probe.close()
    finally:
        await redis.aclose()
    return {
        "connections": count,
        **{k: opened[k] for k in ("opened", "failed", "failures", "handshakes_per_s")},
        "redis_subscriptions_baseline": baseline,
        "redis_subscriptions_while_open": while_open,
        "redis_subscriptions_after_disconnect": left,
        "stale_subscriptions": max(0, left - baseline),
        "seconds_until_clean": waited,
    }


# --------------------------------------------------------------------------------------------
# S4: history of a room with 1,000,000 messages


def s4_history(ctx: Context, requests: int | None = None) -> dict:
    requests = requests or (50 if ctx.quick else 300)
    token = ctx.data["users"][0]["token"]
    results = {}
    conn = http.client.HTTPConnection("127.0.0.1", ctx.server.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for key, info in ctx.data["history"].items():
            room = ctx.data["rooms"][key]
            base = f"/api/chat/rooms/{room}/messages/"
            mid = (info["min_id"] + info["max_id"]) // 2
            queries = {
                "latest": base,
                "before_deep": f"{base}?before={info['min_id'] + 100}",
                "after_mid": f"{base}?after={mid}",
            }
            per_room = {"messages": info["count"], "insert_seconds": info.get("insert_seconds")}
            for name, url in queries.items():
                times = []
                for i in range(requests + 10):
                    started = time.perf_counter()
                    conn.request("GET", url, headers=headers)
                    response = conn.getresponse()
                    body = response.read()
                    elapsed = time.perf_counter() - started
                    if response.status != 200:
                        raise RuntimeError(f"GET {url}: {response.status} {body[:300]!r}")
                    if i >= 10:  # the first ten are warm-up
                        times.append(elapsed)
                page = json.loads(body)
                times.sort()
                per_room[name] = {
                    "p50_ms": round(percentile(times, 0.5) * 1000, 2),
                    "p99_ms": round(percentile(times, 0.99) * 1000, 2),
                    "results": len(page["results"]),
                    "has_more": page["has_more"],
                }
            results[key] = per_room
    finally:
        conn.close()
    return {"requests_per_query": requests, "rooms": results}


# --------------------------------------------------------------------------------------------
# S5: stored messages/s, many concurrent senders (closed loop: send, wait for own ack)


async def s5_store(ctx: Context) -> dict:
    clients = [
        Client(
            ctx.product_url(f"s5-{r}", r * S5_ROOM_SIZE + m),
            ctx.tally,
            product=True,
            fanout=S5_ROOM_SIZE,
        )
        for r in range(S5_ROOMS)
        for m in range(S5_ROOM_SIZE)
    ]
    opened = await open_clients(clients, concurrency=50)
    if opened["failed"]:
        await close_clients(clients)
        return {"error": f"could not open clients: {opened}"}
    seconds = 5.0 if ctx.quick else 15.0
    warm = _unique("warm")
    await asyncio.gather(*(c.send_and_wait(warm) for c in clients))
    tag = _unique("s5m")
    acks: list[float] = []
    failures = 0
    before = _window(ctx)
    deadline = time.monotonic() + seconds

    async def sender(client: Client) -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            try:
                acks.append(await client.send_and_wait(tag, timeout=30))
            except Exception:
                failures += 1
                await asyncio.sleep(0.1)

    started = time.monotonic()
    await asyncio.gather(*(sender(c) for c in clients))
    elapsed = time.monotonic() - started
    await drain(ctx.tally, [tag], quiet=1.0, limit=15)
    summary = ctx.tally.summary(tag)
    cpu = _cpu_fields(ctx, before, len(acks))
    profile = None
    if ctx.profile_hook is not None:

        async def closed_loop(seconds: float) -> None:
            stop = time.monotonic() + seconds
            prof = _unique("prof")

            async def one(client: Client) -> None:
                while time.monotonic() < stop:
                    try:
                        await client.send_and_wait(prof, timeout=30)
                    except Exception:
                        await asyncio.sleep(0.1)

            await asyncio.gather(*(one(c) for c in clients))

        profile = await ctx.profile_hook(
            "s5", closed_loop, f"S5 {len(clients)} closed-loop senders", formats=("raw",)
        )
    await close_clients(clients)
    acks.sort()
    return {
        "senders": len(clients),
        "rooms": S5_ROOMS,
        "seconds": round(elapsed, 2),
        "stored_messages": len(acks),
        "stored_per_s": round(len(acks) / elapsed, 1),
        "ack_p50_ms": round(percentile(acks, 0.5) * 1000, 2) if acks else None,
        "ack_p99_ms": round(percentile(acks, 0.99) * 1000, 2) if acks else None,
        "failed_sends": failures,
        "deliveries": summary["deliveries"],
        "lost": summary["lost"],
        "server_cpu_ms_per_stored_message": round(cpu["server_cpu_us_per_delivery"] / 1000, 3)
        if cpu["server_cpu_us_per_delivery"]
        else None,
        "server_cpu_util": cpu["server_cpu_util"],
        "loadgen_cpu_util": cpu["loadgen_cpu_util"],
        "errors": dict(ctx.tally.errors),
        "profile": profile,
    }
