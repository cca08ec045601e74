"""ASGI entry point of benchmark servers: the product, plus the tutorial control.

    daphne bench.asgi:application            (DJANGO_SETTINGS_MODULE=bench.settings)

Everything except /ws/tutorial/<room>/ goes to the product's own `crm_backend.asgi.application`
unchanged (HTTP, chat routes, close-code shim, shutdown hook).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from channels.routing import URLRouter
from django.conf import settings
from django.urls import path

from crm_backend.asgi import application as product_application

if not getattr(settings, "BENCH_TUTORIAL_CONTROL", False):
    raise RuntimeError("bench.asgi needs DJANGO_SETTINGS_MODULE=bench.settings")

from bench.tutorial import TutorialChatConsumer

TUTORIAL_PREFIX = "/ws/tutorial/"

tutorial_application = URLRouter(
    [path("ws/tutorial/<str:room_name>/", TutorialChatConsumer.as_asgi())]
)


async def application(scope, receive, send):
    if scope["type"] == "websocket":
        if scope["path"].startswith(TUTORIAL_PREFIX):
            return await tutorial_application(scope, receive, send)
    return await product_application(scope, receive, send)
