from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from crm_backend.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(url="/static/test_chat_websocket.html"), name="index"),
    path("admin/", admin.site.urls),
    path("api/auth/", include("accounts.urls")),
    path("api/chat/", include("chat.api.urls")),
    path("api/crm/", include("crm.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", healthz, name="healthz"),
]

handler404 = "chat.api.errors.page_not_found"
