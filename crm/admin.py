from django.contrib import admin

from crm.models import Deal


@admin.register(Deal)
class DealAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "stage", "created_at"]
    list_filter = ["stage"]
    search_fields = ["title"]
    filter_horizontal = ["team"]
