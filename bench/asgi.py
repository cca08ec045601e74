"""ASGI entry point of benchmark servers: the product, plus the tutorial control.

    daphne bench.asgi:application            (DJANGO_SETTINGS_MODULE=bench.settings)

Everything except /ws/tutorial/<room>/ goes to the product's own `crm_backend.asgi.application`
unchanged (HTTP, JWT middleware, chat routes, close-code shim, shutdown hook).
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

EXPERIMENT_PREFIX = "/ws/exp/"

tutorial_application = URLRouter(
    [path("ws/tutorial/<str:room_name>/", TutorialChatConsumer.as_asgi())]
)


def _experiments():
    """bench.experiments: the product's consumer with one hot-path change each (optional)."""
    try:
        from accounts.websocket_auth import JWTAuthMiddleware
        from bench.experiments import FastDispatchChatConsumer, LocalFanoutChatConsumer
    except ImportError:  # the product's code moved: the experiments are simply absent
        return None
    return JWTAuthMiddleware(
        URLRouter(
            [
                path("ws/exp/dispatch/chat/<str:room_id>/", FastDispatchChatConsumer.as_asgi()),
                path("ws/exp/local/chat/<str:room_id>/", LocalFanoutChatConsumer.as_asgi()),
            ]
        )
    )


experiment_application = _experiments()


async def application(scope, receive, send):
    if scope["type"] == "websocket":
        if scope["path"].startswith(TUTORIAL_PREFIX):
            return await tutorial_application(scope, receive, send)
        if experiment_application is not None and scope["path"].startswith(EXPERIMENT_PREFIX):
            return await experiment_application(scope, receive, send)
    return await product_application(scope, receive, send)
