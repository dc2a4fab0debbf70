from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from agents import services
from agents.models import IntentExample, IntentModel, SentimentModel, WidgetOrigin, WidgetSettings
from agents.widget import origin_normalize, widget_identity_secret_rotate
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


class WidgetOriginForm(forms.ModelForm):
    class Meta:
        model = WidgetOrigin
        fields = ["origin"]

    def clean_origin(self) -> str:
        try:
            return origin_normalize(self.cleaned_data["origin"])
        except DomainError as exc:
            raise forms.ValidationError(str(exc)) from exc


class WidgetOriginInline(admin.TabularInline):
    model = WidgetOrigin
    form = WidgetOriginForm
    extra = 1
    verbose_name = "allowed website"
    verbose_name_plural = "allowed websites (exact origins, or https://*.example.com for every subdomain)"


@admin.register(WidgetSettings)
class WidgetSettingsAdmin(OrganizationScopedAdmin):
    """The chat widget: its look and words, the pre-chat form, the websites that may embed it,
    the identity secret for identify(), and the snippet to paste into the website."""

    list_display = ["organization", "title", "prechat", "position", "locale"]
    readonly_fields = ["snippet", "identity_secret"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # The operator picks the organization; staff edit their own organization's widget.
        first = ["organization", "snippet"] if self._sees_everything(request) else ["snippet"]
        return [
            (None, {"fields": first}),
            ("Look and words", {"fields": ["title", "greeting", "color", "position", "locale"]}),
            ("Visitors", {"fields": ["prechat", "identity_secret"]}),
        ]

    inlines = [WidgetOriginInline]
    actions = ["rotate_identity_secret"]

    @admin.display(description="Embed snippet")
    def snippet(self, obj: WidgetSettings) -> str:
        if not obj.pk:
            return "Saved settings show the snippet here."
        return format_html(
            '<code>&lt;script src="{}" data-widget-key="{}" defer&gt;&lt;/script&gt;</code>',
            "https://YOUR-CONCIERGE-HOST/static/concierge/widget.js",
            obj.organization.widget_key,
        )

    @admin.action(description="Rotate the identity secret (signed-in users must be re-signed)", permissions=["change"])
    def rotate_identity_secret(self, request: HttpRequest, queryset: QuerySet[WidgetSettings]) -> None:
        for config in queryset:
            widget_identity_secret_rotate(config=config)
        self.message_user(request, f"New identity secret for {queryset.count()} widget(s).", messages.SUCCESS)
