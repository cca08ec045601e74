"""ASGI entry point: HTTP goes to Django, WebSockets to the chat consumers (which authenticate)."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_backend.settings")
django.setup(set_prefix=False)  # as get_asgi_application() does, before consumers import models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core import checks  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.management.base import SystemCheckError  # noqa: E402

from chat import adapters  # noqa: E402
from chat.adapters.request_threads import RequestThreads, SyncStackASGIHandler  # noqa: E402
from chat.realtime.liveness import install_shutdown_hook  # noqa: E402
from chat.realtime.routing import websocket_urlpatterns  # noqa: E402

# daphne runs no system checks: run ours so a misconfigured production server refuses to start.
_errors = [message for message in checks.run_checks(tags=["chat"]) if message.is_serious()]
if _errors:
    raise SystemCheckError("\n".join(str(message) for message in _errors))

adapters.install()  # each adapter only on the library versions it was written for
install_shutdown_hook()  # SIGTERM closes sockets with 1001

application = ProtocolTypeRouter(
    {
        "http": RequestThreads(SyncStackASGIHandler(), threads=settings.CHAT_HTTP_THREADS)
        if adapters.enabled("request_threads")
        else ASGIHandler(),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# What exists once the server has started (modules, settings, URL patterns: ~120,000 objects)
# lives as long as the process. A full collection walked all of it, 80-116 ms during which no
# socket was served (docs/performance.md, item 20); frozen, collections skip it. Collected
# first, so that start-up's own garbage is not kept for good.
gc.collect()
gc.freeze()
