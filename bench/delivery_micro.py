"""In-process A/B of one broadcast delivery: the consumer's `chat_broadcast` to daphne sockets.

    DJANGO_SETTINGS_MODULE=bench.settings .venv/bin/python -m bench.delivery_micro

Measures, side by side in one process and alternating rounds (so a noisy machine slows all
variants alike), the CPU time of handing one broadcast frame to each of 100 daphne sockets:

- asgi: through Channels' `send` and daphne, the library's own path;
- framed once: `chat.adapters.broadcast_frames`, the frame built once and written to each socket.

The sockets are daphne's real protocol objects on an in-memory transport, so the kernel's
send and Twisted's write scheduling (the same for both) are left out.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from functools import partial

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from autobahn.websocket.protocol import WebSocketProtocol  # noqa: E402
from daphne.server import Server  # noqa: E402
from daphne.ws_protocol import WebSocketFactory  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

from chat.adapters.broadcast_frames import framed_socket  # noqa: E402
from chat.realtime import delivery  # noqa: E402
from chat.realtime.consumers.base import BaseChatConsumer  # noqa: E402

SOCKETS = 100
EVENTS_PER_ROUND = 200
ROUNDS = 7
FRAME = (
    '{"type": "chat.message", "id": 1234, "room": "ad36ed7e-0000-4000-8000-000000000000", '
    '"message": "Olá, equipe", "user": {"id": 1, "username": "admin"}, '
    '"created_at": "2026-11-25T12:00:00.123456Z", "client_id": "c-42"}'
)


def consumers(*, framed: bool) -> list[BaseChatConsumer]:
    server = Server.__new__(Server)
    server.connections = {}
    factory = WebSocketFactory(server_class=None)
    made = []
    for port in range(SOCKETS):
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 10000 + port))
        protocol.makeConnection(StringTransport())
        protocol.state = WebSocketProtocol.STATE_OPEN  # as daphne leaves it after the handshake
        protocol.client_addr = ["127.0.0.1", 10000 + port]
        server.connections[protocol] = {}
        consumer = BaseChatConsumer()
        consumer.base_send = partial(server.handle_reply, protocol)
        consumer.closing = False
        consumer.send_backlog = None
        consumer.framed_socket = framed_socket(consumer.base_send) if framed else None
        consumer.channel_name = f"socket.{port}"
        made.append(consumer)
    return made


async def one_round(sockets: list[BaseChatConsumer]) -> float:
    """CPU seconds per delivery for EVENTS_PER_ROUND broadcasts to every socket."""
    for consumer in sockets:
        consumer.base_send.args[0].transport.clear()
    started = time.process_time()
    for n in range(EVENTS_PER_ROUND):
        event = delivery.broadcast_event(FRAME.replace("1234", str(n)))
        for consumer in sockets:
            await consumer.chat_broadcast(event)
    return (time.process_time() - started) / (EVENTS_PER_ROUND * len(sockets))


async def main() -> None:
    variants = {"asgi": False, "framed once": True}
    sockets = {name: consumers(framed=framed) for name, framed in variants.items()}
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name in variants:
            results[name].append(await one_round(sockets[name]))
    base = statistics.median(results["asgi"])
    print(f"{SOCKETS} sockets, {ROUNDS} rounds, median")
    print("| path | µs per delivery | ÷ first |")
    print("|---|---:|---:|")
    for name, samples in results.items():
        median = statistics.median(samples)
        print(f"| {name} | {median * 1e6:.1f} | {median / base:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
