"""Staff admin: where support agents work tickets. Every change goes through tickets.services."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from tickets import selectors, services
from tickets.admin_scoping import AuditedAdminMixin, OrganizationScopedAdmin
from tickets.crypto import blind_index
from tickets.errors import DomainError
from tickets.models import (
    AuditEntry,
    BusinessHours,
    Conversation,
    Customer,
    Holiday,
    Macro,
    Message,
    Organization,
    SlaPolicy,
    StaffProfile,
    Tag,
    Team,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from tickets.search import desk_ticket_ids

User = get_user_model()


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
        services.organization_sla_changed(organization_id=form.instance.pk)


# --- tickets -----------------------------------------------------------------------------


class SlaFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("breached", "Breached"), ("at_risk", "At risk")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> QuerySet[Ticket]:
        now = timezone.now()
        if self.value() == "breached":
            return queryset.filter(selectors.sla_breached_q(now))
        if self.value() == "at_risk":
            return queryset.filter(selectors.sla_at_risk_q(now))
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = [("me", "Me"), ("none", "Unassigned")]
        organization = services.staff_organization(request.user)
        staff = User.objects.filter(staff_profile__organization=organization).order_by("username")
        return choices + [(str(user.pk), user.get_username()) for user in staff]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> QuerySet[Ticket]:
        value = self.value()
        if value == "me":
            return queryset.filter(assignee_id=request.user.pk)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


class TicketAdminForm(forms.ModelForm):
    class Meta:
        model = Ticket
        fields = ["subject", "customer", "priority", "status", "assignee", "team", "tags", "channel"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk:
            stored = Ticket.objects.get(pk=self.instance.pk)
            new_status = cleaned.get("status")
            if new_status and new_status != stored.status:
                try:
                    services.ticket_transition_check(stored, new_status)
                except DomainError as exc:
                    self.add_error("status", str(exc))
            if stored.status == TicketStatus.CLOSED and self.has_changed():
                raise forms.ValidationError("A closed ticket cannot be changed.")
        return cleaned


@admin.register(Ticket)
class TicketAdmin(OrganizationScopedAdmin):
    form = TicketAdminForm
    change_form_template = "admin/tickets/ticket/change_form.html"
    list_display = [
        "id",
        "subject",
        "customer_link",
        "vip",
        "status",
        "priority",
        "assignee",
        "sla",
        "channel",
        "sentiment",
        "updated_at",
    ]
    list_display_links = ["id", "subject"]
    list_filter = [
        "status",
        "priority",
        AssigneeFilter,
        SlaFilter,
        "channel",
        ("customer__vip_tier", admin.ChoicesFieldListFilter),
        ("conversation__sentiment_label", admin.ChoicesFieldListFilter),
    ]
    list_select_related = ["customer", "assignee", "conversation"]
    search_fields = ["=id", "subject", "customer__name", "customer__email"]
    readonly_fields = [
        "created_at",
        "updated_at",
        "first_response_due",
        "resolution_due",
        "first_responded_at",
        "resolved_at",
        "closed_at",
        "merged_into",
        "csat_score",
        "csat_comment",
        "conversation",
    ]
    fieldsets = [
        (None, {"fields": ["subject", "customer", "status", "priority", "assignee", "team", "tags", "channel"]}),
        (
            "SLA and outcome",
            {
                "fields": [
                    "created_at",
                    "first_response_due",
                    "first_responded_at",
                    "resolution_due",
                    "resolved_at",
                    "closed_at",
                    "csat_score",
                    "csat_comment",
                    "merged_into",
                    "conversation",
                ]
            },
        ),
    ]
    actions = [
        "assign_to_me",
        "mark_in_progress",
        "mark_pending",
        "mark_resolved",
        "mark_closed",
        "merge_into_oldest",
    ]
    list_per_page = 50

    # --- list columns ---

    @admin.display(description="customer", ordering="customer__name")
    def customer_link(self, ticket: Ticket) -> str:
        url = reverse("admin:tickets_customer_change", args=[ticket.customer_id])
        return format_html('<a href="{}">{}</a>', url, ticket.customer)

    @admin.display(description="VIP", ordering="customer__vip_tier")
    def vip(self, ticket: Ticket) -> str:
        return ticket.customer.get_vip_tier_display() if ticket.customer.is_vip else ""

    @admin.display(description="SLA")
    def sla(self, ticket: Ticket) -> str:
        state = selectors.ticket_sla_state(ticket)
        colours = {"breached": "#ba2121", "at_risk": "#c77c02", "paused": "#666", "ok": "#2e7d32", "done": "#999"}
        return format_html('<span style="color:{}">{}</span>', colours.get(state, "#000"), state.replace("_", " "))

    @admin.display(description="sentiment", ordering="conversation__sentiment_score")
    def sentiment(self, ticket: Ticket) -> str:
        conversation = ticket.conversation
        return conversation.get_sentiment_label_display() if conversation and conversation.sentiment_label else ""

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Ticket], search_term: str) -> Any:
        """Django's field search, plus the keyword index: subjects, customers and every message
        of the ticket's conversation, ranked by BM25 (or Elasticsearch)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        organization = self.staff_org(request)
        if not search_term.strip() or organization is None:
            return results, may_have_duplicates
        try:
            ids = desk_ticket_ids(organization=organization, query=search_term, k=100)
        except DomainError:
            return results, may_have_duplicates
        return results | queryset.filter(pk__in=ids), may_have_duplicates

    # --- saving through services ---

    def save_model(self, request: HttpRequest, obj: Ticket, form: Any, change: bool) -> None:
        data = form.cleaned_data
        tag_names = [tag.name for tag in data.get("tags") or []]
        if not change:
            ticket = services.ticket_create(
                organization=self.staff_org(request) or data["customer"].organization,
                customer=data["customer"],
                subject=data["subject"],
                priority=data["priority"],
                channel=data["channel"],
                team=data.get("team"),
                tags=tag_names,
                actor=request.user,
            )
            obj.pk = obj.id = ticket.pk
        else:
            ticket = Ticket.objects.get(pk=obj.pk)
            if data.get("assignee") != ticket.assignee:
                ticket = services.ticket_assign(ticket=ticket, assignee=data.get("assignee"), actor=request.user)
            ticket = services.ticket_update(
                ticket=ticket,
                actor=request.user,
                subject=data["subject"],
                priority=data["priority"],
                team=data.get("team"),
                tags=tag_names,
            )
        if not change and data.get("assignee"):
            ticket = services.ticket_assign(ticket=ticket, assignee=data["assignee"], actor=request.user)
        if data["status"] != ticket.status:
            services.ticket_transition(ticket=ticket, to_status=data["status"], actor=request.user)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Tags were written by the services above (with their audit events); nothing else relates.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Tickets are closed or merged, never deleted: the audit trail must stay whole.
        return bool(request.user.is_superuser)

    # --- actions ---

    def _each(self, request: HttpRequest, queryset: QuerySet[Ticket], verb: str, change: Any) -> None:
        done, failed = 0, []
        for ticket in queryset:
            try:
                change(ticket)
                done += 1
            except DomainError as exc:
                failed.append(f"#{ticket.pk}: {exc}")
        if done:
            self.message_user(request, f"{verb} {done} ticket(s).", messages.SUCCESS)
        for failure in failed:
            self.message_user(request, failure, messages.ERROR)

    @admin.action(description="Assign to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._each(
            request,
            queryset,
            "Assigned",
            lambda t: services.ticket_assign(ticket=t, assignee=request.user, actor=request.user),
        )

    def _transition_all(self, request: HttpRequest, queryset: QuerySet[Ticket], to_status: str) -> None:
        self._each(
            request,
            queryset,
            f"Moved to {to_status.replace('_', ' ')}:",
            lambda t: services.ticket_transition(ticket=t, to_status=to_status, actor=request.user),
        )

    @admin.action(description="Set status: in progress", permissions=["change"])
    def mark_in_progress(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._transition_all(request, queryset, TicketStatus.IN_PROGRESS)

    @admin.action(description="Set status: pending", permissions=["change"])
    def mark_pending(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._transition_all(request, queryset, TicketStatus.PENDING)

    @admin.action(description="Set status: resolved", permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._transition_all(request, queryset, TicketStatus.RESOLVED)

    @admin.action(description="Set status: closed", permissions=["change"])
    def mark_closed(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._transition_all(request, queryset, TicketStatus.CLOSED)

    @admin.action(description="Merge selected into the oldest", permissions=["change"])
    def merge_into_oldest(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        tickets = list(queryset.order_by("created_at", "pk"))
        if len(tickets) < 2:
            self.message_user(request, "Select at least two tickets to merge.", messages.WARNING)
            return
        target = tickets[0]
        self._each(
            request,
            queryset.exclude(pk=target.pk),
            f"Merged into #{target.pk}:",
            lambda t: services.ticket_merge(source=t, target=target, actor=request.user),
        )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """The fixed actions, plus one 'Apply macro' action per macro of the organization."""
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            return actions
        organization = self.staff_org(request)
        macros = Macro.objects.filter(organization=organization) if organization else Macro.objects.none()
        for macro in macros:
            name = f"apply_macro_{macro.pk}"
            actions[name] = (self._macro_action(macro), name, f"Apply macro: {macro.name}")
        return actions

    def _macro_action(self, macro: Macro) -> Any:
        def apply(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
            self._each(
                request,
                queryset,
                f"Applied {macro.name!r} to",
                lambda t: services.ticket_macro_apply(ticket=t, macro=macro, actor=request.user),
            )

        return apply

    # --- change view: transcript, timeline, reply and note boxes ---

    def get_urls(self) -> list[Any]:
        own = [
            path("<int:ticket_id>/reply/", self.admin_site.admin_view(self.reply_view), name="tickets_ticket_reply"),
            path("<int:ticket_id>/note/", self.admin_site.admin_view(self.note_view), name="tickets_ticket_note"),
        ]
        return own + super().get_urls()

    def _posted_ticket(self, request: HttpRequest, ticket_id: int) -> Ticket:
        ticket = get_object_or_404(self.get_queryset(request), pk=ticket_id)
        if request.method != "POST" or not self.has_change_permission(request, ticket):
            raise PermissionError
        return ticket

    def _back(self, ticket_id: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:tickets_ticket_change", args=[ticket_id]))

    def reply_view(self, request: HttpRequest, ticket_id: int) -> HttpResponse:
        try:
            ticket = self._posted_ticket(request, ticket_id)
        except PermissionError:
            return HttpResponse("Replying needs a POST and permission to change tickets.", status=403)
        try:
            services.ticket_reply(ticket=ticket, author=request.user, text=request.POST.get("text", ""))
            self.message_user(request, "Reply sent to the customer.", messages.SUCCESS)
        except DomainError as exc:
            self.message_user(request, f"Reply not sent: {exc}", messages.ERROR)
        return self._back(ticket_id)

    def note_view(self, request: HttpRequest, ticket_id: int) -> HttpResponse:
        try:
            ticket = self._posted_ticket(request, ticket_id)
        except PermissionError:
            return HttpResponse("Adding a note needs a POST and permission to change tickets.", status=403)
        try:
            services.ticket_note_add(ticket=ticket, author=request.user, body=request.POST.get("body", ""))
            self.message_user(request, "Internal note added.", messages.SUCCESS)
        except DomainError as exc:
            self.message_user(request, f"Note not added: {exc}", messages.ERROR)
        return self._back(ticket_id)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        ticket = self.get_queryset(request).filter(pk=object_id).first() if object_id.isdigit() else None
        if ticket is not None:
            transcript = (
                list(selectors.conversation_transcript(conversation_id=ticket.conversation_id))
                if ticket.conversation_id
                else []
            )
            extra_context.update(
                transcript=transcript,
                events=ticket.events.select_related("actor"),
                notes=ticket.notes.select_related("author"),
                sla_state=selectors.ticket_sla_state(ticket),
                can_reply=self.has_change_permission(request, ticket) and ticket.status != TicketStatus.CLOSED,
            )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(TicketEvent)
class TicketEventAdmin(OrganizationScopedAdmin):
    organization_path = "ticket__organization"
    list_display = ["created_at", "ticket", "kind", "field", "before", "after", "actor", "message"]
    list_filter = ["kind"]
    list_select_related = ["ticket", "actor"]
    search_fields = ["=ticket__id", "message"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- customers and conversations ---------------------------------------------------------


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
    readonly_fields = ["satisfaction_score", "created_at", "last_seen_at", "erased_at"]
    inlines = [CustomerTicketInline, CustomerConversationInline]
    actions = ["export_personal_data", "erase_personal_data"]

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


# --- configuration -----------------------------------------------------------------------


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


@admin.register(Team)
class TeamAdmin(OrganizationScopedAdmin):
    list_display = ["name"]
    filter_horizontal = ["members"]


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


@admin.register(StaffProfile)
class StaffProfileAdmin(OrganizationScopedAdmin):
    list_display = ["user", "role", "capacity", "is_available"]
    list_filter = ["role", "is_available"]
    list_select_related = ["user"]

    def save_model(self, request: HttpRequest, obj: StaffProfile, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Keep group membership in step with the role chosen here.
        services.staff_role_set(user=obj.user, role=obj.role)


class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False
    fields = ["role", "capacity", "is_available"]
    extra = 0


admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    """Users, limited to one's own organization's staff for everyone but the operator."""

    inlines = [StaffProfileInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request).select_related("staff_profile")
        organization = services.staff_organization(request.user)
        if request.user.is_superuser and organization is None:
            return queryset
        return queryset.filter(staff_profile__organization=organization)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            # Only the operator hands out superuser rights; everyone else makes staff.
            obj.is_superuser = False
            obj.is_staff = True
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        organization = services.staff_organization(request.user)
        if organization is not None:
            services.staff_profile_ensure(user=form.instance, organization=organization)


from tickets import admin_reports  # noqa: E402,F401  (registers the report admin)


@admin.register(AuditEntry)
class AuditEntryAdmin(OrganizationScopedAdmin):
    """The hash-chained audit trail: read-only for everyone. `manage.py audit_verify` checks it."""

    list_display = ["seq", "created_at", "actor_label", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "action", "object_id"]
    readonly_fields = ["organization", "seq", "created_at", "actor_label", "actor_user_id", "action",
                       "object_type", "object_id", "data", "prev_hash", "hash"]  # fmt: skip
    ordering = ["-seq"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.site_header = "Concierge support desk"
admin.site.site_title = "Concierge"
admin.site.index_title = "Work the queue"
