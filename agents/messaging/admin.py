"""Admin for the messaging channels: accounts (credentials typed once, kept encrypted, the
webhook URL to copy into the provider's console), every message in and out with its delivery
state, and the phone line's calls (voicemails to play, missed calls)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from agents.messaging.accounts import (
    CREDENTIALS,
    messaging_account_save,
    messaging_credentials_merge,
    messaging_webhook_url,
    telegram_webhook_register,
)
from agents.messaging.models import MessagingAccount, MessagingProvider, MessagingRecord, VoiceCall
from agents.messaging.voice import voice_recording_fetch
from config.errors import DomainError
from tenancy.admin_scoping import OrganizationScopedAdmin, ReadOnlyAdminMixin

# Every provider's credential fields, by name (a name two providers share is one field).
_FIELDS = {field.name: field for fields in CREDENTIALS.values() for field in fields}


def _credential_fields() -> dict[str, forms.Field]:
    """One form field per credential any provider uses; the help names the providers using it."""
    declared: dict[str, forms.Field] = {}
    for name, field in _FIELDS.items():
        users = [p for p in MessagingProvider if any(f.name == name for f in CREDENTIALS[p])]
        note = f"{', '.join(str(p.label) for p in users)}."
        attrs = {"data-providers": " ".join(p.value for p in users)}  # messaging_account.js shows the chosen one's
        if field.secret:
            note += " Stored encrypted, never shown again; blank on an edit keeps the current one."
            if field.generated:
                note += " Blank on a new account: Concierge makes one."
            declared[name] = forms.CharField(
                label=field.label,
                required=False,
                widget=forms.PasswordInput(render_value=False, attrs=attrs),
                help_text=note,
            )
        else:
            declared[name] = forms.CharField(
                label=field.label, required=False, widget=forms.TextInput(attrs=attrs), help_text=note
            )
    return declared


class _AccountForm(forms.ModelForm):
    class Meta:
        model = MessagingAccount
        fields = ["provider", "name", "sender_id", "assistant_answers", "language", "greeting", "active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.secrets() if self.instance.pk else {}
        for name, field in _FIELDS.items():
            if not field.secret and name in self.fields:
                self.fields[name].initial = stored.get(name, "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        provider = cleaned.get("provider")
        if provider:
            stored = self.instance.secrets() if self.instance.pk and provider == self.instance.provider else {}
            try:
                messaging_credentials_merge(
                    provider=provider,
                    stored=stored,
                    typed={name: cleaned.get(name) or "" for name in _FIELDS},
                    sender_id=cleaned.get("sender_id") or "",
                )
            except DomainError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return cleaned


# The credential fields declared on the class, as the admin's fieldsets need them.
MessagingAccountForm = type("MessagingAccountForm", (_AccountForm,), _credential_fields())


@admin.register(MessagingAccount)
class MessagingAccountAdmin(OrganizationScopedAdmin):
    """An organization's accounts with WhatsApp, Telegram, WeChat, Twilio (SMS and phone) and
    its own apps (the API channel)."""

    form = MessagingAccountForm
    list_display = ["name", "provider", "sender_id", "active", "assistant_answers", "webhook"]
    list_filter = ["provider", "active"]
    readonly_fields = ["webhook", "created_at"]
    actions = ["register_telegram_webhook"]

    class Media:
        js = ["concierge/messaging_account.js"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return [
            (
                None,
                {"fields": ["provider", "name", "sender_id", "active", "assistant_answers", "language", "greeting"]},
            ),
            ("Credentials (only the provider's own are used)", {"fields": list(_FIELDS)}),
            ("Webhook", {"fields": ["webhook", "created_at"]}),
        ]

    @admin.display(description="Webhook URL for the provider's console")
    def webhook(self, obj: MessagingAccount) -> str:
        if not obj.pk:
            return "Saved accounts show their URL here."
        if obj.provider == MessagingProvider.VOICE:
            return format_html(
                "Voice URL (a call comes in): <code>{}</code><br>Status callback URL: <code>{}</code>",
                messaging_webhook_url(obj),
                messaging_webhook_url(obj, "status"),
            )
        hints: dict[str, str] = {
            MessagingProvider.WHATSAPP: "with the verify token above; subscribe to the messages field",
            MessagingProvider.TELEGRAM: "the action 'Register the webhook with Telegram' sets it",
            MessagingProvider.WECHAT: "as the server URL, with the token (and EncodingAESKey in safe mode)",
            MessagingProvider.SMS: "as the number's 'A message comes in' webhook (HTTP POST)",
            MessagingProvider.API: "your app POSTs signed messages here",
        }
        hint = hints.get(obj.provider, "")
        return format_html("<code>{}</code> {}", messaging_webhook_url(obj), f"({hint})" if hint else "")

    def save_model(self, request: HttpRequest, obj: MessagingAccount, form: Any, change: bool) -> None:
        if not change and not obj.organization_id:
            obj.organization = self.staff_org(request)
        if change and "provider" in form.changed_data:
            obj.credentials = "{}"
        messaging_account_save(
            account=obj, typed={n: form.cleaned_data.get(n) or "" for n in _FIELDS}, actor=request.user
        )

    @admin.action(description="Register the webhook with Telegram", permissions=["change"])
    def register_telegram_webhook(self, request: HttpRequest, queryset: QuerySet[MessagingAccount]) -> None:
        for account in queryset:
            try:
                url = telegram_webhook_register(account=account)
            except DomainError as exc:
                self.message_user(request, f"{account}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{account}: Telegram posts updates to {url}.", messages.SUCCESS)


@admin.register(MessagingRecord)
class MessagingRecordAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin):
    """Every message in and out through a messaging account, with its delivery state (queued,
    sent, delivered, read, failed with the provider's reason)."""

    organization_path = "account__organization"
    list_display = ["created_at", "account", "direction", "status", "reason", "conversation", "attempts", "parts"]
    list_filter = ["direction", "status", "account__provider"]
    list_select_related = ["account", "conversation__customer"]
    exclude = ["recipient"]


_CALL_FIELDS: list[Any] = [
    "account", "caller", "customer", "status", "provider_status", "started_at", "ended_at", "duration", "recording",
    "transcription", "conversation_link",
]  # fmt: skip


@admin.register(VoiceCall)
class VoiceCallAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin):
    """The phone line's calls: voicemails (played here, with Twilio's transcription) and missed
    calls."""

    organization_path = "account__organization"
    list_display = ["started_at", "caller", "customer", "status", "duration", "recording_seconds", "conversation_link"]
    list_filter = ["status", ("account", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["account", "conversation__customer"]
    fields = _CALL_FIELDS
    readonly_fields = _CALL_FIELDS

    @admin.display(description="Customer")
    def customer(self, call: VoiceCall) -> str:
        if call.conversation is None:
            return "-"
        customer = call.conversation.customer
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:tickets_customer_change", args=[customer.pk]), customer
        )

    @admin.display(description="Conversation")
    def conversation_link(self, call: VoiceCall) -> str:
        if call.conversation_id is None:
            return "-"
        tickets = call.conversation.tickets.all() if call.conversation is not None else []
        links = format_html_join(
            ", ",
            '<a href="{}">ticket #{}</a>',
            ((reverse("admin:tickets_ticket_change", args=[t.pk]), t.pk) for t in tickets),
        )
        return format_html("#{} {}", call.conversation_id, links)

    @admin.display(description="Voicemail")
    def recording(self, call: VoiceCall) -> str:
        if not call.recording_url:
            return "No voicemail was left." if call.status == "missed" else "-"
        url = reverse("admin:agents_voicecall_recording", args=[call.pk])
        return format_html(
            '<audio controls preload="none" src="{}"></audio> {} s · <a href="{}">download</a>',
            url,
            call.recording_seconds or 0,
            url,
        )

    def get_urls(self) -> list[Any]:
        recording = self.admin_site.admin_view(self.recording_view)
        return [path("<int:pk>/recording/", recording, name="agents_voicecall_recording"), *super().get_urls()]

    def recording_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The recording streamed from Twilio with the account's credentials: staff of the
        call's organization play it without a Twilio login."""
        call = get_object_or_404(self.get_queryset(request).select_related("account"), pk=pk)
        if not call.recording_url:
            return HttpResponse("This call has no voicemail.", status=404, content_type="text/plain")
        try:
            content, content_type = voice_recording_fetch(call=call)
        except Exception as exc:  # Twilio unreachable, the recording deleted there
            return HttpResponse(f"Twilio did not return the recording: {exc}", status=502, content_type="text/plain")
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'inline; filename="voicemail-{call.pk}.mp3"'
        return response
