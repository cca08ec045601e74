from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User


class CrmUserAdmin(UserAdmin):
    list_display = [*UserAdmin.list_display, "is_bot"]
    list_filter = [*UserAdmin.list_filter, "is_bot"]
    # A service account is made by manage.py create_api_key; here it can only be looked at.
    readonly_fields = ["is_bot"]
    fieldsets = [*UserAdmin.fieldsets, ("Service account", {"fields": ["is_bot"]})]


admin.site.register(User, CrmUserAdmin)
