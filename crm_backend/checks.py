"""Production guard rails: with DEBUG off, the dev defaults are errors, not warnings.

They run with every manage.py command (`check`, `check --deploy`, `migrate`) and when the ASGI
application starts (crm_backend.asgi), so a production server refuses to start and says why.
"""

from django.conf import settings
from django.core.checks import Error, register


@register("chat")
def production_settings_check(app_configs, **kwargs):
    if settings.DEBUG:
        return []
    errors = []
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY or len(settings.SECRET_KEY) < 40:
        errors.append(
            Error(
                "DJANGO_SECRET_KEY is the development default (or shorter than 40 characters) "
                "while DJANGO_DEBUG is off: anyone could forge access tokens.",
                hint="Set DJANGO_SECRET_KEY to a long random value, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
                id="crm.E001",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "DJANGO_ALLOWED_HOSTS contains '*' while DJANGO_DEBUG is off: every origin "
                "would count as the server's own and pass the WebSocket origin check.",
                hint="List the real host names, e.g. DJANGO_ALLOWED_HOSTS=chat.example.com.",
                id="crm.E002",
            )
        )
    return errors
