"""The ticket page as the agent's workspace: the conversation in the main column (the handoff
summary, the transcript, live over /ws/console/, and the composer: reply through the
conversation's channel with a macro or the assistant's suggested reply inserted, attachments,
internal notes with @mentions), the ticket's fields and the customer beside it. Every change
goes through tickets.services."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.text import normalize_newlines
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from tickets import selectors, services
from tickets.attachments import attachment_link
from tickets.models import Macro, ReplySuggestion, Ticket, TicketStatus

SHORTCUTS = [
    ("Ctrl+Enter", _("send the reply (or add the note, in the note box)")),
    ("Alt+R", _("go to the reply box")),
    ("Alt+N", _("go to the note box")),
    ("Alt+S", _("suggest a reply")),
    ("Alt+J", _("next ticket")),
]

# The page script's own words, in the staff member's language ({name} and the like filled in there).
WORKSPACE_TEXTS = {
    "live": _("live"),
    "reconnecting": _("reconnecting…"),
    "viewing": _("{name} is also viewing this ticket"),
    "typing": _("{name} is typing a reply"),
    "customer_typing": _("The customer is typing…"),
    "drafting": _("Drafting…"),
    "no_server": _("No suggestion: the server did not answer."),
    "from_llm": _("(written by the LLM from the articles)"),
    "from_kb": _("(from the knowledge base)"),
    "mentioned": _("{by} mentioned you on #{ticket}: {text}"),
    "no_reply_text": _("(no reply text)"),
    "also_sets": _("Also sets:"),
    "now": _("now"),
    "system": _("system"),
    "unassigned": _("unassigned"),
}
HISTORY_ROWS = 10


def _message_html(message: Any, zone: Any) -> str:
    """One transcript row. Rendered here rather than in a template loop: a 500-message
    transcript costs ~0.5 ms a row through the template engine, a tenth of that here.
    Everything from a person or the database is escaped."""
    meta = [f"#{message.seq}", escape(message.get_role_display())]
    head = " · ".join(meta)
    if message.author_id:
        head += f" ({escape(message.author)})"
    head += " · " + message.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    sentiment = getattr(message, "sentiment", None)
    if sentiment is not None:
        head += (
            f' <span class="cc-sentiment {escape(sentiment.label)}" title="{sentiment.score:.2f}">'
            f"{escape(sentiment.get_label_display())}</span>"
        )
    intent = (message.metadata or {}).get("intent")
    if intent:
        head += f" · intent {escape(intent)}"
    email = getattr(message, "email", None)
    if email is not None:
        reason = f": {escape(email.reason)}" if email.reason else ""
        head += (
            f' · <span class="cc-email" title="{escape(email.mail_id)}">'
            f"email {escape(email.get_status_display().lower())}{reason}</span>"
        )
    relayed = getattr(message, "messaging", None)
    if relayed is not None and relayed.direction == "out":
        reason = f": {escape(relayed.reason)}" if relayed.reason else ""
        head += (
            f' · <span class="cc-delivery {escape(relayed.status)}">'
            f"{escape(relayed.get_status_display().lower())}{reason}</span>"
        )
    files = "".join(f'<a class="cc-file" href="{escape(link)}">{escape(name)}</a>' for name, link in message.links)
    text = escape(normalize_newlines(message.text)).replace("\n", "<br>")
    return (
        f'<div class="cc-msg role-{escape(message.role)}" data-seq="{message.seq}">'
        f'<div class="cc-meta">{head}</div><div class="cc-text">{text}</div>{files}</div>'
    )


def transcript_html(messages: list[Any], zone: Any) -> str:
    if not messages:
        return mark_safe('<p class="cc-quiet cc-empty">No messages yet.</p>')
    return mark_safe("".join(_message_html(m, zone) for m in messages))  # noqa: S308  (escaped above)


class TicketWorkspaceMixin:
    """Mixed into TicketAdmin: the change view's context and the workspace's own endpoints."""

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view  # type: ignore[attr-defined]
        own = [
            path("<int:ticket_id>/reply/", view(self.reply_view), name="tickets_ticket_reply"),
            path("<int:ticket_id>/note/", view(self.note_view), name="tickets_ticket_note"),
            path("<int:ticket_id>/claim/", view(self.claim_view), name="tickets_ticket_claim"),
            path("<int:ticket_id>/suggestion/", view(self.suggestion_view), name="tickets_ticket_suggestion"),
            path(
                "<int:ticket_id>/suggestion/<int:suggestion_id>/discard/",
                view(self.suggestion_discard_view),
                name="tickets_ticket_suggestion_discard",
            ),
            path("inbox/counts/", view(self.counts_view), name="tickets_ticket_counts"),
        ]
        return own + super().get_urls()  # type: ignore[misc]

    # --- posted changes ---

    def _posted_ticket(self, request: HttpRequest, ticket_id: int) -> Ticket:
        ticket = get_object_or_404(self.get_queryset(request), pk=ticket_id)  # type: ignore[attr-defined]
        if request.method != "POST" or not self.has_change_permission(request, ticket):  # type: ignore[attr-defined]
            raise PermissionError
        return ticket

    def _back(self, request: HttpRequest, ticket_id: int) -> HttpResponseRedirect:
        wanted = request.POST.get("next", "")
        if wanted and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}):
            return HttpResponseRedirect(wanted)
        return HttpResponseRedirect(reverse("admin:tickets_ticket_change", args=[ticket_id]))

    def _posted_change(
        self, request: HttpRequest, ticket_id: int, what: str, change: Callable[[Ticket], str], failed: str
    ) -> HttpResponse:
        """A form post from the page: ``change`` the ticket through the services and say how it
        went (its message, or ``failed`` with the reason), then go back."""
        try:
            ticket = self._posted_ticket(request, ticket_id)
        except PermissionError:
            return HttpResponse(f"{what} needs a POST and permission to change tickets.", status=403)
        try:
            self.message_user(request, change(ticket), messages.SUCCESS)  # type: ignore[attr-defined]
        except DomainError as exc:
            self.message_user(request, failed % {"reason": exc}, messages.ERROR)  # type: ignore[attr-defined]
        return self._back(request, ticket_id)

    def reply_view(self, request: HttpRequest, ticket_id: int) -> HttpResponse:
        text = request.POST.get("text", "")

        def reply(ticket: Ticket) -> str:
            suggestion = None
            if request.POST.get("suggestion", "").isdigit():
                suggestion = ReplySuggestion.objects.filter(
                    pk=int(request.POST["suggestion"]), ticket=ticket, outcome=ReplySuggestion.Outcome.PENDING
                ).first()
            services.ticket_reply(
                ticket=ticket,
                author=request.user,
                text=text,
                attachment=request.FILES.get("file"),
                client_message_id=request.POST.get("client_message_id", "")[:64],
            )
            if suggestion is not None:
                services.suggestion_decide(suggestion=suggestion, sent_text=text)
            return gettext("Reply sent to the customer.")

        return self._posted_change(request, ticket_id, "Replying", reply, gettext("Reply not sent: %(reason)s"))

    def note_view(self, request: HttpRequest, ticket_id: int) -> HttpResponse:
        def note(ticket: Ticket) -> str:
            services.ticket_note_add(ticket=ticket, author=request.user, body=request.POST.get("body", ""))
            return gettext("Internal note added.")

        return self._posted_change(request, ticket_id, "Adding a note", note, gettext("Note not added: %(reason)s"))

    def claim_view(self, request: HttpRequest, ticket_id: int) -> HttpResponse:
        def claim(ticket: Ticket) -> str:
            services.ticket_assign(ticket=ticket, assignee=request.user, actor=request.user, reason="Claimed")
            return gettext("#%(id)s is yours now.") % {"id": ticket.pk}

        return self._posted_change(request, ticket_id, "Claiming", claim, gettext("Not claimed: %(reason)s"))

    def suggestion_view(self, request: HttpRequest, ticket_id: int) -> HttpResponse:
        """POST: the assistant drafts a reply (stored as a pending suggestion) and returns it."""
        try:
            ticket = self._posted_ticket(request, ticket_id)
        except PermissionError:
            return JsonResponse({"error": "Suggestions need a POST and permission to change tickets."}, status=403)
        try:
            suggestion = services.reply_suggestion_make(ticket=ticket, agent=request.user)
        except DomainError as exc:
            return JsonResponse({"error": str(exc)}, status=422)
        return JsonResponse(
            {
                "id": suggestion.pk,
                "text": suggestion.text,
                "citations": suggestion.citations,
                "generated": suggestion.generated,
            }
        )

    def suggestion_discard_view(self, request: HttpRequest, ticket_id: int, suggestion_id: int) -> HttpResponse:
        try:
            ticket = self._posted_ticket(request, ticket_id)
        except PermissionError:
            return JsonResponse({"error": "Discarding needs a POST and permission to change tickets."}, status=403)
        suggestion = get_object_or_404(ReplySuggestion, pk=suggestion_id, ticket=ticket)
        try:
            services.suggestion_decide(suggestion=suggestion, sent_text=None)
        except DomainError as exc:
            return JsonResponse({"error": str(exc)}, status=409)
        return JsonResponse({"id": suggestion.pk, "outcome": suggestion.outcome})

    def counts_view(self, request: HttpRequest) -> HttpResponse:
        organization = self.staff_org(request)  # type: ignore[attr-defined]
        if organization is None:
            return JsonResponse({"error": "Sign in as staff of an organization."}, status=403)
        return JsonResponse(selectors.inbox_counts(organization=organization, user_id=request.user.pk))

    # --- the page ---

    def _next_ticket(self, request: HttpRequest, ticket: Ticket) -> int | None:
        """The next ticket to work: the user's own, then the unassigned, by SLA deadline."""
        now = timezone.now()
        queryset = self.get_queryset(request).exclude(pk=ticket.pk)  # type: ignore[attr-defined]
        for view in ("mine", "unassigned"):
            found = (
                queryset.filter(selectors.inbox_view_q(view, user_id=request.user.pk, now=now))
                .order_by("sla_due", "pk")
                .values_list("pk", flat=True)
                .first()
            )
            if found:
                return int(found)
        return None

    def workspace_context(self, request: HttpRequest, ticket: Ticket) -> dict[str, Any]:
        transcript = (
            list(
                selectors.conversation_transcript(conversation_id=ticket.conversation_id).prefetch_related(
                    "attachments"
                )
            )
            if ticket.conversation_id
            else []
        )
        for message in transcript:
            message.links = [(a.name, attachment_link(a)) for a in message.attachments.all()]  # type: ignore[attr-defined]
        customer = ticket.customer
        history = list(selectors.customer_history(customer=customer).exclude(pk=ticket.pk)[:HISTORY_ROWS])
        macros = [
            (macro, services.macro_render(macro=macro, ticket=ticket, agent=request.user))
            for macro in Macro.objects.filter(organization_id=ticket.organization_id)
        ]
        can_change = self.has_change_permission(request, ticket)  # type: ignore[attr-defined]
        services.ticket_seen(ticket=ticket, user=request.user)
        services.notifications_read(user=request.user, ticket=ticket)
        conversations = list(customer.conversations.order_by("-started_at")[:HISTORY_ROWS])
        channels = sorted({c.get_channel_display() for c in conversations})
        return {
            "transcript": transcript,
            "transcript_html": transcript_html(transcript, ticket.organization.zone),
            "summary": services.conversation_summary(transcript),
            "sentiment_points": services.sentiment_points(transcript),
            "events": ticket.events.select_related("actor"),
            "notes": ticket.notes.select_related("author"),
            "sla_state": selectors.ticket_sla_state(ticket),
            "can_reply": can_change and ticket.status != TicketStatus.CLOSED,
            "customer": customer,
            "identities": [
                (label, value)
                for label, value in (
                    (_("Email"), customer.email),
                    (_("Phone"), customer.phone),
                    (_("Your system's ID"), customer.external_id),
                )
                if value
            ],
            "channels_used": channels,
            "conversations": [c for c in conversations if c.pk != ticket.conversation_id],
            "history": history,
            "csat_history": [t for t in history if t.csat_score],
            "macros": macros,
            "shortcuts": SHORTCUTS,
            "workspace_texts": WORKSPACE_TEXTS,
            "next_ticket": self._next_ticket(request, ticket),
            "last_seq": transcript[-1].seq if transcript else 0,
        }
