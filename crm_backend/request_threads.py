"""HTTP requests on a few long-lived threads, so their database connections are kept.

Django's ASGI handler runs each request's sync code (middleware, DRF views, the ORM) on a
thread made for that request. Database connections belong to a thread, so every request
opened a new connection and dropped it: CONN_MAX_AGE had no effect, and each history page
paid a PostgreSQL connect (a new backend process) or a SQLite open. Here each request runs
in a ThreadSensitiveContext bound to one of CHAT_HTTP_THREADS single-thread executors, the
least busy one; asgiref then ignores the handler's own per-request context. A thread's
connection is kept, and recycled at the request boundaries as CONN_MAX_AGE says.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext


class RequestThreads:
    """ASGI middleware for Django's HTTP application: requests on `threads` kept threads."""

    def __init__(self, app, *, threads: int) -> None:
        if threads < 1:
            raise ValueError("RequestThreads needs at least one thread")
        self.app = app
        self.executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"http-request-{index}")
            for index in range(threads)
        ]
        self.in_flight = dict.fromkeys(range(threads), 0)

    async def __call__(self, scope, receive, send):
        index = min(self.in_flight, key=self.in_flight.__getitem__)  # least busy thread
        self.in_flight[index] += 1
        try:
            async with ThreadSensitiveContext(executor=self.executors[index]):
                await self.app(scope, receive, send)
        finally:
            self.in_flight[index] -= 1
