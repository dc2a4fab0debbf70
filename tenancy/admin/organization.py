"""Organizations: time zone, business hours, holidays and the SLA breach action; a change moves
the deadlines of open tickets."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from tenancy import services
from tenancy.admin_scoping import OrganizationScopedAdmin
from tenancy.models import BusinessHours, Holiday, Organization


class BusinessHoursInline(admin.TabularInline):
    model = BusinessHours
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_path = "pk"
    list_display = ["name", "slug", "timezone", "sla_breach_action", "widget_key", "created_at"]
    readonly_fields = ["widget_key", "created_at"]
    inlines = [BusinessHoursInline, HolidayInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if self._sees_everything(request):
            return queryset
        return queryset.filter(pk=getattr(self.staff_org(request), "pk", None))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Time zone, business hours and holidays move every open ticket's deadlines.
        services.organization_calendar_changed(organization_id=form.instance.pk)
