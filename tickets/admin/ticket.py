"""The ticket page and list: where agents work tickets (transcript, timeline, reply and note boxes,
filters by SLA state and assignee, bulk actions, macros). Every change goes through
tickets.services."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from tenancy.admin_scoping import OrganizationScopedAdmin, ReadOnlyAdminMixin
from tenancy.services import staff_organization
from tickets import selectors, services
from tickets.admin.workspace import WORKSPACE_TEXTS, TicketWorkspaceMixin
from tickets.models import Macro, Ticket, TicketEvent, TicketStatus
from tickets.search import desk_ticket_ids


class InboxChangeList(ChangeList):
    """The inbox's page of rows carries the last message and the waiting time (subqueries run for
    the rows shown only, not for every read of a ticket in admin)."""

    def get_results(self, request: HttpRequest) -> None:
        self.queryset = selectors.inbox_rows(self.queryset)
        super().get_results(request)


class InboxViewFilter(admin.SimpleListFilter):
    """The inbox's views (mine, unassigned, all open, waiting on customer, SLA at risk or
    breached, VIP), shown as tabs with live counts above the list."""

    title = "view"
    parameter_name = "view"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(selectors.INBOX_VIEWS)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> QuerySet[Ticket]:
        view = self.value() or ""
        if view in dict(selectors.INBOX_VIEWS):
            return queryset.filter(selectors.inbox_view_q(view, user_id=request.user.pk, now=timezone.now()))
        return queryset


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
        organization = staff_organization(request.user)
        staff = get_user_model().objects.filter(staff_profile__organization=organization).order_by("username")
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
class TicketAdmin(TicketWorkspaceMixin, OrganizationScopedAdmin):
    form = TicketAdminForm
    change_form_template = "admin/tickets/ticket/change_form.html"
    change_list_template = "admin/tickets/ticket/change_list.html"
    list_display = [
        "id",
        "subject",
        "customer_link",
        "channel",
        "last_message",
        "waiting",
        "priority",
        "sla",
        "sentiment",
        "assignee_cell",
        "status",
    ]
    list_display_links = ["id", "subject"]
    list_filter = [
        InboxViewFilter,
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

    @admin.display(description=_("customer"), ordering="customer__name")
    def customer_link(self, ticket: Ticket) -> str:
        url = reverse("admin:tickets_customer_change", args=[ticket.customer_id])
        vip = ticket.customer.get_vip_tier_display() if ticket.customer.is_vip else ""
        return format_html(
            '<a href="{}">{}</a>{}',
            url,
            ticket.customer,
            format_html(' <span class="cc-vip">{}</span>', vip) if vip else "",
        )

    @admin.display(description=_("last message"))
    def last_message(self, ticket: Ticket) -> str:
        text = getattr(ticket, "last_text", None) or ""
        if not text:
            return ""
        preview = " ".join(text.split())[:80]
        unread = ticket.assignee_id is not None and (getattr(ticket, "last_seq", 0) or 0) > ticket.assignee_seen_seq
        return format_html(
            '<span class="cc-preview{}" title="{}">{}: {}</span>',
            " cc-unread" if unread else "",
            _("unread by the assignee") if unread else "",
            getattr(ticket, "last_role", ""),
            preview,
        )

    @admin.display(description=_("waiting"), ordering="last_customer_at")
    def waiting(self, ticket: Ticket) -> str:
        """How long the customer has waited for a person since they last wrote."""
        asked, answered = getattr(ticket, "last_customer_at", None), getattr(ticket, "last_agent_at", None)
        if ticket.status not in ("open", "in_progress") or asked is None or (answered and answered >= asked):
            return ""
        minutes = int((timezone.now() - asked).total_seconds() // 60)
        shown = (
            f"{minutes} min" if minutes < 120 else f"{minutes // 60} h" if minutes < 2880 else f"{minutes // 1440} d"
        )
        return format_html('<span class="cc-waiting" data-since="{}">{}</span>', asked.isoformat(), shown)

    @admin.display(description=_("assignee"), ordering="assignee__username")
    def assignee_cell(self, ticket: Ticket) -> str:
        if ticket.assignee_id:
            return str(ticket.assignee)
        if ticket.status == TicketStatus.CLOSED:
            return ""
        return format_html(
            '<button type="submit" form="cc-claim" formaction="{}" class="cc-claim button">{}</button>',
            reverse("admin:tickets_ticket_claim", args=[ticket.pk]),
            _("Claim"),
        )

    @admin.display(description=_("SLA"))
    def sla(self, ticket: Ticket) -> str:
        state = selectors.ticket_sla_state(ticket)
        colours = {"breached": "#ba2121", "at_risk": "#c77c02", "paused": "#666", "ok": "#2e7d32", "done": "#999"}
        return format_html('<span style="color:{}">{}</span>', colours.get(state, "#000"), state.replace("_", " "))

    @admin.display(description=_("sentiment"), ordering="conversation__sentiment_score")
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
            services.ticket_edit(
                ticket=ticket, actor=request.user, assignee=data.get("assignee"), status=data["status"]
            )
            return
        services.ticket_edit(
            ticket=Ticket.objects.get(pk=obj.pk),
            actor=request.user,
            assignee=data.get("assignee"),
            status=data["status"],
            subject=data["subject"],
            priority=data["priority"],
            team=data.get("team"),
            tags=tag_names,
        )

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

    @admin.action(description=_("Assign to me"), permissions=["change"])
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

    @admin.action(description=_("Set status: in progress"), permissions=["change"])
    def mark_in_progress(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._transition_all(request, queryset, TicketStatus.IN_PROGRESS)

    @admin.action(description=_("Set status: pending"), permissions=["change"])
    def mark_pending(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._transition_all(request, queryset, TicketStatus.PENDING)

    @admin.action(description=_("Set status: resolved"), permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._transition_all(request, queryset, TicketStatus.RESOLVED)

    @admin.action(description=_("Set status: closed"), permissions=["change"])
    def mark_closed(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        self._transition_all(request, queryset, TicketStatus.CLOSED)

    @admin.action(description=_("Merge selected into the oldest"), permissions=["change"])
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
        """The fixed actions, plus one 'Apply macro' action per macro of the organization and one
        'Assign to' action per colleague."""
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            return actions
        organization = self.staff_org(request)
        macros = Macro.objects.filter(organization=organization) if organization else Macro.objects.none()
        for macro in macros:
            name = f"apply_macro_{macro.pk}"
            actions[name] = (self._macro_action(macro), name, f"Apply macro: {macro.name}")
        staff = (
            get_user_model()
            .objects.filter(staff_profile__organization=organization, is_active=True)
            .order_by("username")
            if organization
            else []
        )
        for user in staff:
            name = f"assign_to_{user.pk}"
            actions[name] = (self._assign_action(user), name, f"Assign to {user.get_username()}")
        return actions

    def _bulk_action(self, verb: str, change: Any) -> Any:
        """An admin action that applies ``change(ticket, actor)`` to each selected ticket."""

        def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
            self._each(request, queryset, verb, lambda t: change(t, request.user))

        return run

    def _assign_action(self, user: Any) -> Any:
        return self._bulk_action(
            f"Assigned to {user.get_username()}:",
            lambda t, actor: services.ticket_assign(ticket=t, assignee=user, actor=actor),
        )

    def _macro_action(self, macro: Macro) -> Any:
        return self._bulk_action(
            f"Applied {macro.name!r} to",
            lambda t, actor: services.ticket_macro_apply(ticket=t, macro=macro, actor=actor),
        )

    # --- the ticket page ---

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        ticket = (
            self.get_queryset(request).select_related("conversation", "organization").filter(pk=object_id).first()
            if object_id.isdigit()
            else None
        )
        if ticket is not None:
            extra_context.update(self.workspace_context(request, ticket))
        return super().change_view(request, object_id, form_url, extra_context)

    # --- the inbox ---

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        organization = self.staff_org(request)
        counts = selectors.inbox_counts(organization=organization, user_id=request.user.pk) if organization else {}
        current = request.GET.get(InboxViewFilter.parameter_name, "")
        extra_context = {
            **(extra_context or {}),
            "inbox_views": [(key, label, counts.get(key, 0), key == current) for key, label in selectors.INBOX_VIEWS],
            "inbox_all": not current,
            "workspace_texts": WORKSPACE_TEXTS,
        }
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ticket]:
        return super().get_queryset(request).annotate(sla_due=selectors.sla_due_expression())

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> Any:
        return InboxChangeList

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        return [F("sla_due").asc(nulls_last=True), "-created_at"]


@admin.register(TicketEvent)
class TicketEventAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin):
    organization_path = "ticket__organization"
    list_display = ["created_at", "ticket", "kind", "field", "before", "after", "actor", "message"]
    list_filter = ["kind"]
    list_select_related = ["ticket", "actor"]
    search_fields = ["=ticket__id", "message"]
