"""Desk configuration: macros, tags and SLA policies."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.errors import DomainError
from tenancy.admin_scoping import OrganizationScopedAdmin
from tickets import services
from tickets.models import Macro, SlaPolicy, Tag


@admin.register(Macro)
class MacroAdmin(OrganizationScopedAdmin):
    list_display = ["name", "set_status", "set_priority", "add_tags"]
    search_fields = ["name", "reply"]

    def save_model(self, request: HttpRequest, obj: Macro, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in services.MACRO_FIELDS}
        try:
            if change:
                services.macro_update(macro=Macro.objects.get(pk=obj.pk), **fields)
            else:
                macro = services.macro_create(organization=self.staff_org(request) or obj.organization, **fields)
                obj.pk = obj.id = macro.pk
        except DomainError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            raise


@admin.register(Tag)
class TagAdmin(OrganizationScopedAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(SlaPolicy)
class SlaPolicyAdmin(OrganizationScopedAdmin):
    list_display = ["priority", "vip_tier", "first_response_minutes", "resolution_minutes"]
    list_filter = ["priority", "vip_tier"]

    # A policy change moves the deadlines of the organization's open tickets.
    def save_model(self, request: HttpRequest, obj: SlaPolicy, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        services.organization_sla_changed(organization_id=obj.organization_id)

    def delete_model(self, request: HttpRequest, obj: SlaPolicy) -> None:
        organization_id = obj.organization_id
        super().delete_model(request, obj)
        services.organization_sla_changed(organization_id=organization_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SlaPolicy]) -> None:
        organization_ids = set(queryset.values_list("organization_id", flat=True))
        super().delete_queryset(request, queryset)
        for organization_id in organization_ids:
            services.organization_sla_changed(organization_id=organization_id)
