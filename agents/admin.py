from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agents import services
from agents.models import IntentExample, IntentModel, SentimentModel
from config.errors import DomainError
from tenancy.admin_scoping import OrganizationScopedAdmin


@admin.register(IntentExample)
class IntentExampleAdmin(OrganizationScopedAdmin):
    list_display = ["intent", "text", "created_at"]
    list_filter = ["intent"]
    search_fields = ["intent", "text"]
    actions = ["train_new_version"]

    @admin.action(description="Train a new intent model from all examples", permissions=["add"])
    def train_new_version(self, request: HttpRequest, queryset: QuerySet[IntentExample]) -> None:
        try:
            model = services.intent_model_train(organization=self.staff_org(request), actor=request.user)
        except DomainError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Trained and activated v{model.version}: {model.metrics}", messages.SUCCESS)


@admin.register(IntentModel)
class IntentModelAdmin(OrganizationScopedAdmin):
    list_display = ["version", "is_active", "examples", "accuracy", "created_at", "created_by"]
    readonly_fields = [
        "version",
        "is_active",
        "intents",
        "examples",
        "metrics",
        "threshold",
        "created_by",
        "created_at",
    ]
    exclude = ["blob"]
    actions = ["activate"]

    @admin.display(description="held-back accuracy")
    def accuracy(self, model: IntentModel) -> str:
        value = (model.metrics or {}).get("accuracy")
        return f"{value:.3f}" if value is not None else ""

    @admin.action(description="Activate (or roll back to) this version", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[IntentModel]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.WARNING)
            return
        model = services.intent_model_activate(model=queryset.get())
        self.message_user(request, f"v{model.version} is now active; servers switch on their next message.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("blob")


@admin.register(SentimentModel)
class SentimentModelAdmin(admin.ModelAdmin):
    """Sentiment models are shared by every organization: only the operator manages them."""

    list_display = ["language", "version", "is_active", "examples", "source", "created_at"]
    readonly_fields = ["language", "version", "is_active", "labels", "examples", "metrics", "source", "created_at"]
    exclude = ["blob"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("blob")
