"""HTTP requests on a few long-lived threads, so their database connections are kept.

Django's ASGI handler runs each request's sync code (middleware, DRF views, the ORM) on a
thread made for that request. Database connections belong to a thread, so every request
opened a new database connection and dropped it: CONN_MAX_AGE had no effect, and each history
page paid a PostgreSQL connect (a new backend process) or a SQLite open. Here each request runs
in a ThreadSensitiveContext bound to one of CHAT_HTTP_THREADS single-thread executors, the
least busy one; asgiref then ignores the handler's own per-request context. A thread's
connection is kept, and recycled at the request boundaries as CONN_MAX_AGE says.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler


class _RequestThread(ThreadPoolExecutor):
    """One thread that knows how many calls given to it have not finished yet.

    A request whose client went away ends while its view may still run here: the thread
    counts as busy until that call returns.
    """

    def __init__(self, name: str) -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        self.unfinished = 0
        self._count_lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self._count_lock:
            self.unfinished += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future) -> None:
        with self._count_lock:
            self.unfinished -= 1


class RequestThreads:
    """ASGI middleware for Django's HTTP application: requests on `threads` kept threads."""

    def __init__(self, app, *, threads: int) -> None:
        if threads < 1:
            raise ValueError("RequestThreads needs at least one thread")
        self.app = app
        self.threads = [_RequestThread(f"http-request-{index}") for index in range(threads)]
        self.in_flight = [0] * threads  # requests in progress on each thread

    def least_busy(self) -> int:
        return min(
            range(len(self.threads)),
            key=lambda index: (self.in_flight[index] + self.threads[index].unfinished, index),
        )

    async def __call__(self, scope, receive, send):
        index = self.least_busy()
        self.in_flight[index] += 1
        try:
            async with ThreadSensitiveContext(executor=self.threads[index]):
                await self.app(scope, receive, send)
        finally:
            self.in_flight[index] -= 1


class SyncStackASGIHandler(ASGIHandler):
    """Django's ASGI handler, running the middleware stack and the view as sync code at once.

    Our views are sync (DRF). With Django's async stack, every hook of every middleware (each
    MiddlewareMixin: session, CSRF, auth, ...) and then the view and the response's rendering
    took a thread hop of their own: 16 per history request. Here the whole stack is one
    call in the request's thread; what is left are the request signals and the response's
    close (tests/test_request_threads.py counts them).
    """

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)
