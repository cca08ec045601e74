"""HTTP middleware of our own."""

from __future__ import annotations


class SyncMiddlewareStack:
    """Last in MIDDLEWARE: Django then runs the middleware stack as sync code, in one thread.

    Under ASGI, Django runs every middleware that can do both (every MiddlewareMixin: session,
    CSRF, auth, ...) in async mode, and each of its sync hooks in a thread hop of its own: 16
    hops per API request. Our views are sync (DRF), so an async stack gains nothing. Django
    adapts the stack once at a sync-only middleware, and keeps every middleware above it
    sync: 6 hops per request (tests/test_request_threads.py counts them).
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
