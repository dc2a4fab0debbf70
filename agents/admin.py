from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from agents import experiments, services
from agents.active_models import active_models_forget
from agents.email.providers import email_provider_problem
from agents.models import (
    EmailChannel,
    EmailMailbox,
    EmailProvider,
    EmailRecord,
    IntentExample,
    IntentModel,
    IntentPolicy,
    ModelExperiment,
    ModelKind,
    SentimentModel,
    WidgetOrigin,
    WidgetSettings,
)
from agents.widget import origin_normalize, widget_identity_secret_rotate
from config.errors import DomainError
from tenancy.admin_scoping import OrganizationScopedAdmin, ReadOnlyAdminMixin, SecretsKeptForm, secret_field


@admin.register(IntentPolicy)
class IntentPolicyAdmin(OrganizationScopedAdmin):
    """What the assistant does for an intent: answer from the knowledge base, acknowledge and
    hand to a person, or reply with a fixed text. Intents without a row follow the built-in
    policy (small talk answered, complaints and billing disputes handed to a person)."""

    list_display = ["intent", "action", "reply_en", "reply_zh"]
    list_filter = ["action"]
    search_fields = ["intent"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        base = super().get_form(request, obj, change=change, **kwargs)
        organization = self.staff_org(request)

        class OnePolicyPerIntent(base):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                cleaned = super().clean()
                intent = cleaned.get("intent")
                taken = IntentPolicy.objects.filter(organization=organization, intent=intent).exclude(
                    pk=self.instance.pk
                )
                if organization is not None and intent and taken.exists():
                    raise forms.ValidationError(f"There is a policy for {intent!r} already; change that one.")
                return cleaned

        return OnePolicyPerIntent

    def save_model(self, request: HttpRequest, obj: IntentPolicy, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        active_models_forget()  # this process answers by the new policy at once

    def delete_model(self, request: HttpRequest, obj: IntentPolicy) -> None:
        super().delete_model(request, obj)
        active_models_forget()


@admin.register(IntentExample)
class IntentExampleAdmin(OrganizationScopedAdmin):
    list_display = ["intent", "text", "held_back", "created_at"]
    list_filter = ["held_back", "intent"]
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

    @admin.display(description="held-back accuracy")
    def accuracy(self, model: IntentModel) -> str:
        value = (model.metrics or {}).get("accuracy")
        return f"{value:.3f}" if value is not None else ""

    actions = ["activate", "activate_override", "start_test_10", "start_test_50"]

    def _one(self, request: HttpRequest, queryset: QuerySet[IntentModel]) -> IntentModel | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.WARNING)
            return None
        return queryset.get()

    def _activate(self, request: HttpRequest, queryset: QuerySet[IntentModel], override: bool) -> None:
        model = self._one(request, queryset)
        if model is None:
            return
        try:
            services.intent_model_activate(model=model, actor=request.user, override=override)
        except DomainError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"v{model.version} is now active; servers switch on their next message.")

    @admin.action(description="Activate (or roll back to) this version", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[IntentModel]) -> None:
        self._activate(request, queryset, override=False)

    @admin.action(description="Activate even if it scores worse on the held-back examples", permissions=["change"])
    def activate_override(self, request: HttpRequest, queryset: QuerySet[IntentModel]) -> None:
        self._activate(request, queryset, override=True)

    def _start_test(self, request: HttpRequest, queryset: QuerySet[IntentModel], share: int) -> None:
        model = self._one(request, queryset)
        if model is None:
            return
        try:
            test = experiments.experiment_start(
                organization=model.organization,
                kind=ModelKind.INTENT,
                candidate_version=model.version,
                share=share,
                actor=request.user,
            )
        except DomainError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"A/B test started: {test}. Its report is under Model A/B tests.")

    @admin.action(description="A/B test this version on 10%% of conversations", permissions=["change"])
    def start_test_10(self, request: HttpRequest, queryset: QuerySet[IntentModel]) -> None:
        self._start_test(request, queryset, 10)

    @admin.action(description="A/B test this version on 50%% of conversations", permissions=["change"])
    def start_test_50(self, request: HttpRequest, queryset: QuerySet[IntentModel]) -> None:
        self._start_test(request, queryset, 50)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("blob")


@admin.register(SentimentModel)
class SentimentModelAdmin(admin.ModelAdmin):
    """Sentiment models are shared by every organization: only the operator manages them."""

    list_display = ["language", "organization", "version", "is_active", "examples", "source", "created_at"]
    list_filter = ["language", "is_active"]
    readonly_fields = [
        "organization",
        "language",
        "version",
        "is_active",
        "labels",
        "examples",
        "metrics",
        "source",
        "created_at",
    ]
    exclude = ["blob"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("blob")


class ModelExperimentForm(forms.ModelForm):
    class Meta:
        model = ModelExperiment
        fields = ["kind", "language", "candidate_version", "share"]


@admin.register(ModelExperiment)
class ModelExperimentAdmin(OrganizationScopedAdmin):
    """A/B tests of model versions: start one here (or from an intent model's actions), read
    how the arms compare, then promote the candidate or roll back. Changes go through
    agents.experiments, which writes the audit trail."""

    form = ModelExperimentForm
    list_display = ["__str__", "kind", "language", "status", "control_version", "started_at", "ended_at"]
    list_filter = ["status", "kind"]
    actions = ["promote", "promote_override", "roll_back"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return ["kind", "language", "candidate_version", "control_version", "share", "status", "started_at",
                "ended_at", "started_by", "report"]  # fmt: skip

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        base = ["kind", "language", "candidate_version", "share"]
        if obj is None:
            return (["organization"] if self._sees_everything(request) else []) + base
        return self.get_readonly_fields(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None and self._sees_everything(request):
            kwargs["fields"] = ["organization", "kind", "language", "candidate_version", "share"]
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request: HttpRequest, obj: ModelExperiment, form: Any, change: bool) -> None:
        if change:
            return
        organization = self.staff_org(request) or form.cleaned_data.get("organization")
        try:
            started = experiments.experiment_start(
                organization=organization,
                kind=obj.kind,
                candidate_version=obj.candidate_version,
                share=obj.share,
                language=obj.language,
                actor=request.user,
            )
        except DomainError as exc:
            raise forms.ValidationError(str(exc)) from exc
        obj.pk = obj.id = started.pk

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        try:
            return super().add_view(request, form_url, extra_context)
        except forms.ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            from django.http import HttpResponseRedirect

            return HttpResponseRedirect(request.path)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Arms compared")
    def report(self, obj: ModelExperiment) -> str:
        figures = experiments.experiment_report(obj)
        rows = [
            ("Version", "version", "{}"),
            ("Conversations", "conversations", "{}"),
            ("Assistant turns", "bot_turns", "{}"),
            ("Fallback rate", "fallback_rate", "{:.1%}"),
            ("Handoff rate", "handoff_rate", "{:.1%}"),
            ("CSAT (mean of 5)", "csat_mean", "{:.2f}"),
            ("CSAT responses", "csat_responses", "{}"),
            ("Resolution rate", "resolution_rate", "{:.1%}"),
        ]

        def cell(arm: str, key: str, pattern: str) -> str:
            value = figures[arm][key]
            return "-" if value is None else pattern.format(value)

        body = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            ((label, cell("control", key, p), cell("candidate", key, p)) for label, key, p in rows),
        )
        return format_html(
            '<table class="experiment-report"><thead><tr><th></th><th>Active (control)</th>'
            "<th>Candidate</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def _end(self, request: HttpRequest, queryset: QuerySet[ModelExperiment], how: str) -> None:
        for test in queryset:
            try:
                if how == "roll_back":
                    experiments.experiment_roll_back(experiment=test, actor=request.user)
                else:
                    experiments.experiment_promote(experiment=test, actor=request.user, override=how == "override")
            except DomainError as exc:
                self.message_user(request, f"{test}: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{test}: {'rolled back' if how == 'roll_back' else 'promoted'}.")

    @admin.action(description="Promote the candidate (activate it, end the test)", permissions=["change"])
    def promote(self, request: HttpRequest, queryset: QuerySet[ModelExperiment]) -> None:
        self._end(request, queryset, "promote")

    @admin.action(description="Promote even if it scores worse on the held-back examples", permissions=["change"])
    def promote_override(self, request: HttpRequest, queryset: QuerySet[ModelExperiment]) -> None:
        self._end(request, queryset, "override")

    @admin.action(description="Roll back (end the test, keep the active version)", permissions=["change"])
    def roll_back(self, request: HttpRequest, queryset: QuerySet[ModelExperiment]) -> None:
        self._end(request, queryset, "roll_back")


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


class EmailMailboxForm(SecretsKeptForm):
    password = secret_field("The mailbox's password.")
    secret_fields = ("password",)

    class Meta:
        model = EmailMailbox
        fields = ["host", "port", "security", "username", "password", "folder", "enabled"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not cleaned.get("password"):
            raise forms.ValidationError("The mailbox's password is needed.")
        return cleaned


class EmailMailboxInline(admin.StackedInline):
    model = EmailMailbox
    form = EmailMailboxForm
    extra = 0
    readonly_fields = ["last_polled_at", "last_error"]
    verbose_name_plural = "polled mailboxes (IMAP; polled every minute)"


class EmailProviderForm(SecretsKeptForm):
    webhook_secret = secret_field("user:password, the basic auth in the webhook URL you give the provider.")
    signing_key = secret_field("Mailgun: the HTTP webhook signing key; MailerSend: the inbound secret.")
    secret_fields = ("webhook_secret", "signing_key")

    class Meta:
        model = EmailProvider
        fields = ["provider", "webhook_secret", "signing_key", "enabled"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        provider = cleaned.get("provider")
        if provider:
            problem = email_provider_problem(
                provider=provider,
                webhook_secret=cleaned.get("webhook_secret") or "",
                signing_key=cleaned.get("signing_key") or "",
            )
            if problem:
                raise forms.ValidationError(problem)
        return cleaned


class EmailProviderInline(admin.StackedInline):
    model = EmailProvider
    form = EmailProviderForm
    extra = 0
    readonly_fields = ["webhook_url", "last_received_at"]
    verbose_name_plural = "inbound email providers (webhooks)"

    @admin.display(description="Webhook URL to give the provider")
    def webhook_url(self, obj: EmailProvider) -> str:
        if not obj.pk:
            return "Saved settings show the URL here."
        return format_html(
            "<code>https://USER:PASSWORD@YOUR-CONCIERGE-HOST/api/v1/email/inbound/{}/{}</code>",
            obj.channel.organization.slug,
            obj.provider,
        )


@admin.register(EmailChannel)
class EmailChannelAdmin(OrganizationScopedAdmin):
    """The support mailbox: the address customers write to, what the assistant does with an
    email, and the ways mail comes in: polled mailboxes, providers' webhooks, an MTA pipe."""

    list_display = ["organization", "address", "display_name", "assistant"]
    readonly_fields = ["inbound_url", "inbound_secret"]
    inlines = [EmailMailboxInline, EmailProviderInline]

    @admin.display(description="MTA pipe endpoint")
    def inbound_url(self, obj: EmailChannel) -> str:
        if not obj.pk:
            return "Saved settings show the endpoint here."
        return format_html(
            "<code>POST https://YOUR-CONCIERGE-HOST/api/v1/email/inbound/{}</code> with the raw message as the "
            "body and <code>Authorization: Bearer</code> the secret below",
            obj.organization.slug,
        )


@admin.register(EmailRecord)
class EmailRecordAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin):
    """Every email in and out: threading headers, delivery state (queued, sent, failed with the
    reason), and for received mail the whole text and HTML as the customer sent it."""

    list_display = ["created_at", "direction", "status", "subject", "conversation", "attempts", "reason"]
    list_filter = ["direction", "status"]
    list_select_related = ["conversation"]
    readonly_fields = [
        "direction", "status", "reason", "attempts", "mail_id", "in_reply_to", "references", "subject", "sender",
        "recipient", "conversation", "message", "full_text", "html_view", "created_at", "sent_at",
    ]  # fmt: skip
    exclude = ["organization", "html"]

    @admin.display(description="HTML as received")
    def html_view(self, obj: EmailRecord) -> str:
        """The safe HTML, shown as the customer's mail client showed it, in a sandboxed frame
        (no scripts, no forms, no same-origin access)."""
        if not obj.html:
            return "-"
        return format_html(
            '<iframe sandbox="" referrerpolicy="no-referrer" srcdoc="{}" title="HTML as received" '
            'style="width:100%;min-height:24em;border:1px solid var(--hairline-color);background:#fff"></iframe>',
            obj.html,
        )


# Registers the actions' and the messaging channels' admin (modules of their own: this one holds
# the models' and email's).
from agents.actions import admin as actions_admin  # noqa: E402, F401
from agents.messaging import admin as messaging_admin  # noqa: E402, F401
