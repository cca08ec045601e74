"""The operator's metrics: every definition, and the few calls that record them.

Names start with `chat_`; labels take only bounded values (a room type, a close code, a frame
type, a reason), never a room or a user, so a busy server cannot grow the series without end.

The hot path pays O(1) per fan-out, not per socket: RoomHub counts the frames it wrote in a
local int and calls `fanout_written` once per event (docs/performance.md, "Metrics").

With PROMETHEUS_MULTIPROC_DIR set (several server processes behind one address), prometheus_client
keeps every value in a file of that directory, and `exposition` sums the processes' files:
the gauges are then "livesum" (or "livemax"), so a process that exits (or is killed: checked
at each scrape) stops counting.
"""

from __future__ import annotations

import atexit
import glob
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
if MULTIPROCESS_DIR is not None:
    # Each metric opens its file as it is defined, below: a missing folder would stop start-up.
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

# Seconds: a fan-out or a database write takes from ~0.1 ms (one socket, SQLite) to seconds
# (a room of thousands on a stalled machine).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

open_sockets = Gauge(
    "chat_open_sockets",
    "WebSockets open in a room, by room type",
    ["room_type"],
    multiprocess_mode="livesum",
)
handshakes = Counter(
    "chat_handshakes",
    "WebSocket handshakes by result (accepted, refused) and close code (refused only)",
    ["result", "close_code"],
)
messages_stored = Counter("chat_messages_stored", "Messages stored (every transport)")
deliveries = Counter(
    "chat_deliveries", "Frames the fan-out wrote to local sockets (room and user events)"
)
delivery_latency = Histogram(
    "chat_delivery_latency_seconds",
    "A message's store (created_at) to the last local socket write of its fan-out",
    buckets=LATENCY_BUCKETS,
)
socket_buffered_bytes = Gauge(
    "chat_socket_buffered_bytes",
    "Bytes written to sockets that their clients have not read yet, all sockets (sampled)",
    multiprocess_mode="livesum",
)
socket_buffered_bytes_max = Gauge(
    "chat_socket_buffered_bytes_max",
    "The most bytes one socket has waiting to be read (sampled)",
    multiprocess_mode="livemax",
)
slow_socket_closes = Counter(
    "chat_slow_socket_closes",
    "Sockets closed with 1013 for not keeping up, by reason",
    ["reason"],
)
layer_round_trip = Histogram(
    "chat_channel_layer_round_trip_seconds",
    "The watchdog's channel-layer round trip (Redis only)",
    buckets=LATENCY_BUCKETS,
)
watchdog_failures = Counter(
    "chat_channel_layer_watchdog_failures",
    "Watchdog checks that found the channel layer down or restarted (its sockets closed)",
    ["problem"],
)
database_write = Histogram(
    "chat_database_write_seconds",
    "A message's INSERT, inside the room's order (its transaction's other rows excluded)",
    buckets=LATENCY_BUCKETS,
)
rate_limited_frames = Counter(
    "chat_rate_limited_frames",
    "Client frames refused by their budget (rate_limited), by frame type",
    ["frame_type"],
)

# Why a socket was closed for slowness (slow_socket_closes' label).
BUFFER_BYTES = "buffer_bytes"  # CHAT_SOCKET_BUFFER_BYTES waiting for it
NOT_READING = "not_reading"  # send buffer full for CHAT_SLOW_RECEIVER_SECONDS
ROOM_BACKLOG = "room_backlog"  # the process fell CHANNEL_LAYER_CAPACITY behind on its room


def fanout_written(count: int, stored_at: float | None) -> None:
    """Once per fan-out: `count` frames written; for a message, its latency since it was
    stored (when this process wrote it anywhere)."""
    if not count:
        return
    deliveries.inc(count)
    if stored_at is not None:
        delivery_latency.observe(time.time() - stored_at)


def socket_opened(room_type: str) -> None:
    open_sockets.labels(room_type).inc()


def socket_closed(room_type: str) -> None:
    open_sockets.labels(room_type).dec()


def handshake_accepted() -> None:
    handshakes.labels("accepted", "").inc()


def handshake_refused(close_code: int) -> None:
    handshakes.labels("refused", str(close_code)).inc()


def registry() -> CollectorRegistry:
    """What /metrics shows: this process's registry, or every process's files."""
    if MULTIPROCESS_DIR is None:
        return REGISTRY
    from prometheus_client import multiprocess

    _forget_dead_processes()
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=MULTIPROCESS_DIR)
    return collected


def exposition() -> tuple[bytes, str]:
    """(body, content type) of /metrics in Prometheus' text format."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def _forget_this_process() -> None:
    """Live gauges of an exited process must not count any more (its counters still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid(), MULTIPROCESS_DIR)


if MULTIPROCESS_DIR is not None:
    atexit.register(_forget_this_process)


def _forget_dead_processes() -> None:
    """atexit never runs in a worker that was killed (SIGKILL, the OOM killer, a crash): its
    live gauges would count its sockets forever. At each scrape, a live-gauge file whose
    process is gone is removed (the processes share one host, so one PID space)."""
    from prometheus_client import multiprocess

    for path in glob.glob(os.path.join(MULTIPROCESS_DIR, "gauge_live*_*.db")):
        pid = os.path.basename(path)[: -len(".db")].rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), MULTIPROCESS_DIR)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def snapshot() -> dict[str, list]:
    """The chat_ samples now, for the admin's live page: {sample name: [[labels, value], ...]}."""
    samples: dict[str, list] = {}
    for family in registry().collect():
        if not family.name.startswith("chat_"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # when each series began: nothing to plot
            samples.setdefault(sample.name, []).append([sample.labels, sample.value])
    return samples
