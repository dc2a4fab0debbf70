"""Admin for the assistant's actions: what each endpoint needs, how it authenticates, and what
the assistant says with its result. The secret is typed once and never shown again."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from agents.actions.models import AssistantAction
from agents.active_models import active_models_forget
from tenancy.admin_scoping import OrganizationScopedAdmin, SecretsKeptForm, secret_field


class AssistantActionForm(SecretsKeptForm):
    auth_secret = secret_field("The token, password or signing key.")
    secret_fields = ("auth_secret",)
    organization: Any = None

    class Meta:
        model = AssistantAction
        fields = [
            "name", "description", "is_active", "intent", "examples", "method", "url", "inputs",
            "requires_identified", "auth", "auth_username", "auth_header", "auth_secret", "timeout_seconds",
            "reply_en", "reply_zh",
        ]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        name = cleaned.get("name")
        taken = AssistantAction.objects.filter(organization=self.organization, name=name).exclude(pk=self.instance.pk)
        if self.organization is not None and name and taken.exists():
            raise forms.ValidationError(f"There is an action named {name!r} already.")
        return cleaned


@admin.register(AssistantAction)
class AssistantActionAdmin(OrganizationScopedAdmin):
    """An endpoint of the organization's own systems the assistant calls for a customer (order
    status, cancel an order, change an address). Every call is in the audit trail as
    ai.action_call, with its inputs and outcome and the secret masked."""

    form = AssistantActionForm
    list_display = ["name", "intent", "method", "url", "requires_identified", "is_active", "updated_at"]
    list_filter = ["is_active", "method", "auth"]
    search_fields = ["name", "intent", "url"]
    fieldsets = [
        (None, {"fields": ["name", "description", "is_active"]}),
        ("When the assistant calls it", {"fields": ["intent", "examples", "requires_identified"]}),
        ("The endpoint", {"fields": ["method", "url", "inputs", "timeout_seconds"]}),
        ("Authentication", {"fields": ["auth", "auth_username", "auth_header", "auth_secret"]}),
        ("What the assistant says", {"fields": ["reply_en", "reply_zh"]}),
    ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form: Any = super().get_form(request, obj, change=change, **kwargs)
        form.organization = self.staff_org(request) if obj is None else obj.organization
        return form

    def save_model(self, request: HttpRequest, obj: AssistantAction, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        active_models_forget()  # this process calls the changed action from the next message

    def delete_model(self, request: HttpRequest, obj: AssistantAction) -> None:
        super().delete_model(request, obj)
        active_models_forget()
