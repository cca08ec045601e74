"""The operator's live page in the Django admin: the /metrics figures, plotted (staff only).

`admin.site.admin_view` guards both views: anyone not staff is sent to the admin's login. The
page (crm_backend/templates/admin/chat_metrics.html, static/chat_metrics.js, uPlot vendored
under static/vendor/) polls `data/` every few seconds and plots rates and gauges itself.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache

from chat.observability.metrics import snapshot

POLL_SECONDS = 2


def chat_metrics_page(request):
    context = {
        **admin.site.each_context(request),
        "title": "Chat metrics",
        "poll_seconds": POLL_SECONDS,
    }
    return TemplateResponse(request, "admin/chat_metrics.html", context)


@never_cache
def chat_metrics_data(request):
    """The chat_ samples of every server process (multi-process mode) or of this one."""
    return JsonResponse({"samples": snapshot()})


page = admin.site.admin_view(chat_metrics_page)
data = admin.site.admin_view(chat_metrics_data)
