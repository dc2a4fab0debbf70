"""Customers (with their tickets and conversations) and conversations (with their messages)."""

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html_join

from tenancy.admin_scoping import OrganizationScopedAdmin
from tickets import services
from tickets.crypto import blind_index
from tickets.models import Conversation, Customer, Message, MessageRole, SentimentRecord, Ticket


class CustomerTicketInline(admin.TabularInline):
    model = Ticket
    fields = ["subject", "status", "priority", "assignee", "created_at", "csat_score"]
    readonly_fields = ["subject", "status", "priority", "assignee", "created_at", "csat_score"]
    show_change_link = True
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CustomerConversationInline(admin.TabularInline):
    model = Conversation
    fields = ["channel", "status", "started_at", "ended_at", "last_seq", "sentiment_label"]
    readonly_fields = ["channel", "status", "started_at", "ended_at", "last_seq", "sentiment_label"]
    show_change_link = True
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(OrganizationScopedAdmin):
    list_display = ["__str__", "email", "vip_tier", "satisfaction_score", "language", "last_seen_at"]
    list_filter = ["vip_tier", "language"]
    search_fields = ["name", "external_id"]
    readonly_fields = ["satisfaction_score", "created_at", "last_seen_at", "erased_at", "identities"]
    inlines = [CustomerTicketInline, CustomerConversationInline]
    actions = ["merge_into_oldest", "export_personal_data", "erase_personal_data"]

    @admin.display(description="Channel identities")
    def identities(self, customer: Customer) -> str:
        """How the customer is known on the messaging channels (a WhatsApp number, a Telegram
        chat, a WeChat follower, a caller), read through the reverse relation the assistant's
        channels add."""
        rows = [
            (
                identity.get_provider_display(),
                identity.address,
                identity.display_name,
                f"{identity.created_at:%Y-%m-%d}",
            )
            for identity in customer.channel_identities.order_by("created_at")
        ]
        if not rows:
            return "-"
        return format_html_join("", "<div>{}: <code>{}</code> {} <small>since {}</small></div>", rows)

    @admin.action(description="Merge selected customers into the oldest", permissions=["change"])
    def merge_into_oldest(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        customers = list(queryset.order_by("created_at", "pk"))
        if len(customers) < 2:
            self.message_user(request, "Select at least two customers to merge.", messages.WARNING)
            return
        target = customers[0]
        for source in customers[1:]:
            try:
                services.customer_merge(source=source, target=target, actor=request.user)
            except services.DomainError as exc:
                self.message_user(request, f"{source}: {exc}", messages.ERROR)
                return
        self.message_user(request, f"Merged {len(customers) - 1} customer(s) into {target}.", messages.SUCCESS)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Customer], search_term: str) -> Any:
        """Emails are encrypted at rest: an address in the search box is matched exactly, by its hash."""
        results, duplicates = super().get_search_results(request, queryset, search_term)
        if "@" in search_term:
            results = results | queryset.filter(email_hash=blind_index(search_term.strip()))
        return results, duplicates

    @admin.action(description="Export personal data (JSON)", permissions=["view"])
    def export_personal_data(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse:
        from tickets.privacy import customer_export

        exports = [customer_export(customer=customer, actor=request.user) for customer in queryset]
        response = HttpResponse(json.dumps(exports, indent=2, default=str), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="customer-export.json"'
        return response

    @admin.action(description="Erase personal data (irreversible)", permissions=["delete"])
    def erase_personal_data(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
        from django.template.response import TemplateResponse

        from tickets.privacy import customer_erase

        if request.POST.get("confirmed") != "yes":
            context = {**self.admin_site.each_context(request), "customers": queryset, "opts": self.model._meta,
                       "action": "erase_personal_data", "title": "Erase personal data?"}  # fmt: skip
            return TemplateResponse(request, "admin/tickets/customer/erase_confirm.html", context)
        for customer in queryset:
            customer_erase(customer=customer, actor=request.user)
        self.message_user(request, f"Erased the personal data of {queryset.count()} customer(s).", messages.SUCCESS)
        return None

    def save_model(self, request: HttpRequest, obj: Customer, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in services.CUSTOMER_FIELDS if name in form.cleaned_data}
        if change:
            services.customer_update(customer=Customer.objects.get(pk=obj.pk), **fields)
        else:
            organization = self.staff_org(request) or form.cleaned_data.get("organization")
            customer = services.customer_create(organization=organization, **fields)
            obj.pk = obj.id = customer.pk

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Inlines are read-only history; nothing to save."""


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["seq", "role", "author", "text", "sentiment_label", "created_at"]
    readonly_fields = ["seq", "role", "author", "text", "sentiment_label", "created_at"]
    extra = 0
    can_delete = False
    ordering = ["seq"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).select_related("sentiment", "author")

    @admin.display(description="sentiment")
    def sentiment_label(self, message: Message) -> str:
        record = getattr(message, "sentiment", None)
        return f"{record.get_label_display()} ({record.score:+.2f})" if record else ""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(OrganizationScopedAdmin):
    list_display = ["id", "customer", "channel", "status", "started_at", "last_seq", "sentiment_label"]
    list_filter = ["channel", "status", "sentiment_label"]
    list_select_related = ["customer"]
    search_fields = ["=id", "customer__name", "customer__email"]
    readonly_fields = [
        "customer",
        "channel",
        "status",
        "started_at",
        "ended_at",
        "last_seq",
        "sentiment_score",
        "sentiment_label",
    ]
    inlines = [MessageInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SentimentRecord)
class SentimentRecordAdmin(OrganizationScopedAdmin):
    """Customers' messages with the mood the assistant read, for staff to correct in the list
    (the "corrected" column). Corrections train the organization's own sentiment model."""

    organization_path = "message__conversation__organization"
    list_display = ["message_text", "label", "score", "corrected_label", "corrected_by", "created_at"]
    list_editable = ["corrected_label"]
    list_filter = ["label", "corrected_label"]
    list_select_related = ["message", "corrected_by"]
    fields = ["message_text", "label", "score", "corrected_label", "corrected_by", "created_at"]
    readonly_fields = ["message_text", "label", "score", "corrected_by", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SentimentRecord]:
        return super().get_queryset(request).filter(message__role=MessageRole.CUSTOMER)

    @admin.display(description="message")
    def message_text(self, record: SentimentRecord) -> str:
        text = record.message.text
        return text if len(text) <= 120 else f"{text[:119]}…"

    def save_model(self, request: HttpRequest, obj: SentimentRecord, form: Any, change: bool) -> None:
        services.message_sentiment_correct(record=obj, label=obj.corrected_label, actor=request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
