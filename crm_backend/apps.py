from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "crm_backend"
    verbose_name = "CRM chat project"

    def ready(self):
        from crm_backend import checks  # noqa: F401 - registers the production checks
