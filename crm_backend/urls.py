from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.cache import cache_control
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from crm_backend import operator_page
from crm_backend.frontend import reference_app
from crm_backend.health import healthz
from crm_backend.metrics import metrics


@cache_control(max_age=86400)
def no_favicon(request) -> HttpResponse:
    """Browsers ask every page's site for one: an answer, not a 404 in every log."""
    return HttpResponse(status=204)


urlpatterns = [
    path("favicon.ico", no_favicon, name="favicon"),
    path("", RedirectView.as_view(url="/static/test_chat_websocket.html"), name="index"),
    path("admin/chat-metrics/", operator_page.page, name="chat-metrics"),
    path("admin/chat-metrics/data/", operator_page.data, name="chat-metrics-data"),
    path("admin/", admin.site.urls),
    path("api/auth/", include("accounts.urls")),
    path("api/chat/", include("chat.api.urls")),
    path("api/crm/", include("crm.urls")),
    path("api/chat/", include("webhooks.urls")),  # rooms/<id>/webhooks/
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    # The reference React app (clients/react-demo/dist): its assets, else its index.html.
    re_path(r"^chat/(?P<path>.*)$", reference_app, name="reference-app"),
]

handler404 = "chat.api.errors.page_not_found"
