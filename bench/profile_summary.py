"""Summarize a py-spy `--format raw` profile (collapsed stacks) as plain text.

    python -m bench.profile_summary bench/results/<stamp>-profile.txt

Prints: samples per thread, self time by package (the leaf frame's file), the top leaf
functions, and inclusive time of the hot path's named steps.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

FRAME_RX = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")

PACKAGES = [
    ("chat/", "product: chat/"),
    ("accounts/", "product: accounts/"),
    ("bench/", "bench (control)"),
    ("site-packages/daphne/", "daphne"),
    ("site-packages/autobahn/", "autobahn (websocket framing)"),
    ("site-packages/twisted/", "twisted"),
    ("site-packages/uvicorn/", "uvicorn"),
    ("site-packages/websockets/", "websockets (server side)"),
    ("site-packages/channels_redis/", "channels_redis"),
    ("site-packages/redis/", "redis-py"),
    ("site-packages/channels/", "channels"),
    ("site-packages/asgiref/", "asgiref (sync_to_async)"),
    ("site-packages/django/db/", "django.db (ORM)"),
    ("site-packages/django/", "django (other)"),
    ("site-packages/psycopg", "psycopg"),
    ("site-packages/msgpack", "msgpack"),
    ("site-packages/rest_framework_simplejwt", "simplejwt"),
    ("site-packages/jwt/", "pyjwt"),
    ("/asyncio/", "stdlib asyncio"),
    ("/json/", "stdlib json"),
    ("/logging/", "stdlib logging"),
    ("/sqlite3/", "stdlib sqlite3"),
    ("/concurrent/", "stdlib concurrent.futures"),
    ("/threading.py", "stdlib threading"),
    ("/uuid.py", "stdlib uuid"),
    ("/weakref.py", "stdlib weakref"),
]

# Inclusive: samples with this function anywhere on the stack.
NAMED_STEPS = [
    "receive",  # consumer.receive (frame handling, product + control)
    "handle_chat_message",
    "message_create",
    "room_order",
    "broadcast",
    "group_send",
    "chat_broadcast",
    "chat_message",
    "dispatch",
    "send",
    "sendMessage",
    "dataReceived",
    "handle_reply",
    "thread_handler",
    "_do_receiving",
    "_receive_message",
    "dumps",
    "loads",
    "_run_once",
    "aclose_old_connections",
    "close_old_connections",
    "get_new_connection",
    "_clean_expired",
    "deepcopy",
    "announce_presence",
]


def package_of(path: str) -> str:
    for needle, name in PACKAGES:
        if needle in path:
            return name
    return "other" if path else "native/unknown"


def parse(path: str):
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            yield frames, int(count)


def summarize(path: str, top: int = 25) -> dict:
    total = 0
    threads, packages, leaves, inclusive = Counter(), Counter(), Counter(), Counter()
    for frames, count in parse(path):
        total += count
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
        thread_frames = frames[1:] if thread != "?" else frames
        threads[_thread_kind(thread_frames)] += count
        leaf = FRAME_RX.match(thread_frames[-1]) if thread_frames else None
        if leaf:
            packages[package_of(leaf["file"])] += count
            leaves[f"{leaf['func']} ({_short(leaf['file'])})"] += count
        else:
            packages["native/unknown"] += count
        names = set()
        for frame in thread_frames:
            m = FRAME_RX.match(frame)
            if m:
                names.add(m["func"])
                names.add(m["func"].rsplit(".", 1)[-1])  # "ChatConsumer.receive" -> "receive"
        for name in NAMED_STEPS:
            if name in names:
                inclusive[name] += count
    pct = lambda n: round(100.0 * n / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "threads_pct": {k: pct(v) for k, v in threads.most_common()},
        "self_by_package_pct": {k: pct(v) for k, v in packages.most_common()},
        "top_self_functions_pct": {k: pct(v) for k, v in leaves.most_common(top)},
        "inclusive_pct": {k: pct(inclusive[k]) for k in NAMED_STEPS if inclusive[k]},
    }


def _thread_kind(frames: list[str]) -> str:
    joined = ";".join(frames)
    if "concurrent/futures/thread.py" in joined or "_worker" in joined:
        return "worker thread (sync_to_async: database)"
    return "event loop thread"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def as_text(summary: dict) -> str:
    lines = [f"samples: {summary['samples']}", "", "threads:"]
    lines += [f"  {v:5.1f}%  {k}" for k, v in summary["threads_pct"].items()]
    lines += ["", "self time by package (leaf frame):"]
    lines += [f"  {v:5.1f}%  {k}" for k, v in summary["self_by_package_pct"].items()]
    lines += ["", "top self functions:"]
    lines += [f"  {v:5.1f}%  {k}" for k, v in summary["top_self_functions_pct"].items()]
    lines += ["", "inclusive (function anywhere on the stack):"]
    lines += [f"  {v:5.1f}%  {k}" for k, v in summary["inclusive_pct"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(as_text(summarize(sys.argv[1])))
