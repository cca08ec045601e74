"""A real HTTP server receiving webhooks on 127.0.0.1, in a thread, for the tests.

It checks each request's signature as docs/protocol.md tells receivers to (its own code, not
webhooks.signing) and keeps every request; `answer` decides the status of each.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def signature_ok(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """docs/protocol.md's verification example, verbatim."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    if abs(time.time() - timestamp) > tolerance:
        return False
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    signature_ok: bool | None
    status: int | None = None  # what the receiver answered

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        # Request (before it is kept) -> status; may block, to hold a sender mid-request.
        self.answer: Callable[[Received], int] = lambda request: 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received = receiver.keep(self.path, dict(self.headers), body)
                status = received.status = receiver.answer(received)
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (a killed worker): it never hears the answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def keep(self, path: str, headers: dict, body: bytes) -> Received:
        header = headers.get("X-Chat-Signature", "")
        ok = signature_ok(self.secret, body, header) if self.secret and header else None
        received = Received(path, headers, body, ok)
        with self.lock:
            self.requests.append(received)
        return received

    def by_delivery(self, *, accepted: bool = False) -> dict[str, list[Received]]:
        """Requests by X-Chat-Delivery (`accepted`: only those answered 2xx): what a
        deduplicating receiver keeps is one of each."""
        with self.lock:
            requests = list(self.requests)
        if accepted:
            requests = [r for r in requests if r.status and 200 <= r.status < 300]
        grouped: dict[str, list[Received]] = {}
        for request in requests:
            grouped.setdefault(request.headers["X-Chat-Delivery"], []).append(request)
        return grouped

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
