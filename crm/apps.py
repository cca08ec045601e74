from django.apps import AppConfig


class CrmConfig(AppConfig):
    """The example CRM app: deals, each with its chat room."""

    name = "crm"
    verbose_name = "CRM (exemplo)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.chat import follow_deals

        follow_deals()
