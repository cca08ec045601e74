"""Reference point: a plain asyncio `websockets` broadcast server, no Django, no Channels.

    python -m bench.plain_server --port 8765

Every text frame received on a path is sent, as `{"message": ...}` (the tutorial's frame), to
every connection on the same path, the sender included: the same contract as the tutorial
control, so the same load generator measures it (`--servers plain`, S1 only). GET /healthz
answers 200. What the Python WebSocket stack alone costs per delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict
from http import HTTPStatus

from websockets.asyncio.server import broadcast, serve

rooms: dict[str, set] = defaultdict(set)


def process_request(connection, request):
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def handler(connection) -> None:
    room = rooms[connection.request.path]
    room.add(connection)
    try:
        async for text in connection:
            message = json.loads(text)["message"]
            broadcast(room, json.dumps({"message": message}))
    finally:
        room.discard(connection)


async def main(port: int) -> None:
    async with serve(
        handler,
        "127.0.0.1",
        port,
        process_request=process_request,
        compression=None,
        max_queue=None,
        ping_interval=None,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(main(parser.parse_args().port))
