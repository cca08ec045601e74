from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "crm_backend"
    verbose_name = "CRM chat project"

    def ready(self):
        from django.conf import settings

        from chat.observability.logs import protect_server_loggers
        from crm_backend import checks  # noqa: F401 - registers the production checks

        protect_server_loggers(json_lines=settings.CHAT_LOG_FORMAT == "json")
