"""REST API for the support desk under /api/v1/. Every query is scoped to the caller's
organization, so another tenant's rows answer 404. Views validate, call a service, render."""

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenancy.services import staff_organization
from tickets import selectors, services
from tickets.crypto import blind_index
from tickets.models import Channel, Conversation, Customer, Macro, Priority, Ticket, TicketStatus, VipTier
from tickets.search import desk_search
from tickets.serializers import (
    ConversationCreateSerializer,
    ConversationSerializer,
    CustomerSerializer,
    DeskSearchResultSerializer,
    MacroSerializer,
    MessageCreateSerializer,
    MessageSerializer,
    TicketAssignSerializer,
    TicketCreateSerializer,
    TicketCsatSerializer,
    TicketEventSerializer,
    TicketMacroSerializer,
    TicketMergeSerializer,
    TicketNoteSerializer,
    TicketReplySerializer,
    TicketSerializer,
    TicketTransitionSerializer,
    TicketUpdateSerializer,
)


class OrganizationScopedMixin:
    request: Any

    @property
    def organization(self) -> Any:
        return staff_organization(self.request.user)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        # Custom actions on one object (transition, reply, merge...): an object of another
        # organization answers 404 before its body is read, so errors cannot hint at it.
        action = getattr(self, "action", None)
        if getattr(self, "detail", False) and action not in ("retrieve", "update", "partial_update", "destroy"):
            self.get_object()  # type: ignore[attr-defined]


# --- tickets -----------------------------------------------------------------------------


class CustomerFilter(django_filters.FilterSet):
    vip_tier = django_filters.ChoiceFilter(choices=VipTier.choices)
    language = django_filters.CharFilter()
    external_id = django_filters.CharFilter()
    email = django_filters.CharFilter(method="by_email", help_text="Exact email (case-insensitive).")

    class Meta:
        model = Customer
        fields = ["vip_tier", "language", "external_id"]

    def by_email(self, queryset: QuerySet[Customer], name: str, value: str) -> QuerySet[Customer]:
        return queryset.filter(email_hash=blind_index(value))


class TicketFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=TicketStatus.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    vip_tier = django_filters.ChoiceFilter(field_name="customer__vip_tier", choices=VipTier.choices)
    tag = django_filters.CharFilter(field_name="tags__name", distinct=True)
    unassigned = django_filters.BooleanFilter(field_name="assignee", lookup_expr="isnull")
    sla = django_filters.ChoiceFilter(
        choices=[("breached", "Breached"), ("at_risk", "At risk")], method="filter_sla", label="SLA state"
    )
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Ticket
        fields = ["status", "priority", "channel", "assignee", "customer", "team"]

    def filter_sla(self, queryset: QuerySet[Ticket], name: str, value: str) -> QuerySet[Ticket]:
        now = timezone.now()
        query = selectors.sla_breached_q(now) if value == "breached" else selectors.sla_at_risk_q(now)
        return queryset.filter(query)


class TicketViewSet(
    OrganizationScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = TicketSerializer
    filterset_class = TicketFilter
    search_fields = ["subject", "customer__name", "customer__email"]
    ordering_fields = ["created_at", "updated_at", "priority", "resolution_due"]
    queryset = Ticket.objects.none()

    def get_queryset(self) -> QuerySet[Ticket]:
        if self.action in ("list", "retrieve"):
            return selectors.ticket_list(organization=self.organization)
        # An edit or an action finds the ticket, and its service locks and reads it again.
        return Ticket.objects.filter(organization=self.organization)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Filtered, ordered and paginated as DRF does; each page rendered from its columns
        (selectors.ticket_rows, the same objects as TicketSerializer) instead of model objects."""
        tickets = selectors.ticket_values(self.filter_queryset(self.get_queryset()))
        page = self.paginate_queryset(tickets)
        rows = selectors.ticket_rows(tickets if page is None else page, now=timezone.now())
        return Response(rows) if page is None else self.get_paginated_response(rows)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """One ticket rendered as the list renders it: its columns (and on PostgreSQL its tags)
        in one query, no model objects or serializer fields built (finding the object, the
        serializer and the tags' prefetch were about 45% of a detail request's time:
        bench/README.md, tenth round). IsOrganizationStaff has no per-object rule, so there is
        no object to check."""
        try:
            tickets = self.get_queryset().filter(pk=int(pk or ""))
        except ValueError:
            raise NotFound() from None
        rows = selectors.ticket_rows(selectors.ticket_values(tickets), now=timezone.now())
        if not rows:
            raise NotFound()
        return Response(rows[0])

    def _render(self, ticket: Ticket, code: int = status.HTTP_200_OK) -> Response:
        """The ticket a service returned (read under its lock, saved), rendered from its own
        attributes as the list renders rows, with its tags read afresh: no second read of the row."""
        rows = selectors.ticket_rows([selectors.ticket_values_of(ticket)], now=timezone.now())
        return Response(rows[0], status=code)

    @extend_schema(request=TicketCreateSerializer, responses=TicketSerializer)
    def create(self, request: Request) -> Response:
        data = TicketCreateSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        ticket = services.ticket_create(organization=self.organization, actor=request.user, **data.validated_data)
        return self._render(ticket, status.HTTP_201_CREATED)

    @extend_schema(request=TicketUpdateSerializer, responses=TicketSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        # The ticket is found in the caller's organization (404 otherwise, before the body is
        # read) and locked by one query; the edit and its audit entries commit together.
        with services.ticket_change():
            try:
                ticket = services.ticket_lock(Ticket(pk=int(pk or "")), organization_id=self.organization.pk)
            except (Ticket.DoesNotExist, ValueError):
                raise NotFound() from None
            self.check_object_permissions(request, ticket)
            data = TicketUpdateSerializer(data=request.data, context=self.get_serializer_context())
            data.is_valid(raise_exception=True)
            ticket = services.ticket_edit(ticket=ticket, actor=request.user, locked=True, **data.validated_data)
        return self._render(ticket)

    @extend_schema(request=TicketTransitionSerializer, responses=TicketSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, pk: str | None = None) -> Response:
        data = TicketTransitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_transition(
            ticket=self.get_object(),
            to_status=data.validated_data["status"],
            reason=data.validated_data["reason"],
            actor=request.user,
        )
        return self._render(ticket)

    @extend_schema(request=TicketAssignSerializer, responses=TicketSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        data = TicketAssignSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        ticket = services.ticket_assign(
            ticket=self.get_object(), assignee=data.validated_data["assignee"], actor=request.user
        )
        return self._render(ticket)

    @extend_schema(request=TicketReplySerializer, responses=MessageSerializer)
    @action(detail=True, methods=["post"])
    def reply(self, request: Request, pk: str | None = None) -> Response:
        data = TicketReplySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.ticket_reply(ticket=self.get_object(), author=request.user, text=data.validated_data["text"])
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TicketNoteSerializer, responses=TicketNoteSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def notes(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        if request.method == "POST":
            data = TicketNoteSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            note = services.ticket_note_add(ticket=ticket, author=request.user, body=data.validated_data["body"])
            return Response(TicketNoteSerializer(note).data, status=status.HTTP_201_CREATED)
        notes = ticket.notes.select_related("author")
        return Response(TicketNoteSerializer(notes, many=True).data)

    @extend_schema(responses=TicketEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str | None = None) -> Response:
        events = self.get_object().events.select_related("actor")
        return Response(TicketEventSerializer(events, many=True).data)

    @extend_schema(request=TicketMergeSerializer, responses=TicketSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request: Request, pk: str | None = None) -> Response:
        data = TicketMergeSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        target = services.ticket_merge(source=self.get_object(), target=data.validated_data["into"], actor=request.user)
        return self._render(target)

    @extend_schema(request=TicketMacroSerializer, responses=TicketSerializer)
    @action(detail=True, methods=["post"], url_path="apply-macro")
    def apply_macro(self, request: Request, pk: str | None = None) -> Response:
        data = TicketMacroSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        outcome = services.ticket_macro_apply(
            ticket=self.get_object(), macro=data.validated_data["macro"], actor=request.user
        )
        return self._render(outcome.ticket)

    @extend_schema(request=TicketCsatSerializer, responses=TicketSerializer)
    @action(detail=True, methods=["post"])
    def csat(self, request: Request, pk: str | None = None) -> Response:
        data = TicketCsatSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_csat_record(ticket=self.get_object(), **data.validated_data)
        return self._render(ticket)


class DeskSearchView(OrganizationScopedMixin, APIView):
    """Staff search: tickets whose subject, customer or conversation matches, best first."""

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description="Words to find, up to 1,000 characters."),
            OpenApiParameter("k", int, required=False, description="Tickets to return, 1-100 (default 20)."),
        ],
        responses=DeskSearchResultSerializer,
    )
    def get(self, request: Request) -> Response:
        k = request.query_params.get("k", "20")
        if not k.isdigit() or not 1 <= int(k) <= 100:
            return Response({"k": ["A whole number from 1 to 100."]}, status=status.HTTP_400_BAD_REQUEST)
        query = request.query_params.get("q", "")
        hits = desk_search(organization=self.organization, query=query, k=int(k))
        result = DeskSearchResultSerializer({"query": query, "results": hits}, context={"request": request})
        return Response(result.data)


# --- customers ---------------------------------------------------------------------------


class CustomerViewSet(
    OrganizationScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    search_fields = ["name", "external_id"]  # email and phone are encrypted: filter by ?email= instead
    ordering_fields = ["created_at", "last_seen_at", "name"]
    queryset = Customer.objects.none()

    def get_queryset(self) -> QuerySet[Customer]:
        return selectors.customer_list(organization=self.organization)

    def create(self, request: Request) -> Response:
        data = CustomerSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customer = services.customer_create(organization=self.organization, **data.validated_data)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        customer = self.get_object()
        data = CustomerSerializer(customer, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        customer = services.customer_update(customer=customer, **data.validated_data)
        return Response(CustomerSerializer(customer).data)

    @extend_schema(responses=TicketSerializer(many=True))
    @action(detail=True, methods=["get"])
    def tickets(self, request: Request, pk: str | None = None) -> Response:
        """The customer's tickets, newest first, paginated like every list (the schema says so)
        and rendered as the ticket list renders its rows."""
        history = selectors.customer_history(customer=self.get_object()).order_by("-created_at")
        page = self.paginate_queryset(selectors.ticket_values(history))
        return self.get_paginated_response(selectors.ticket_rows(page or [], now=timezone.now()))


# --- conversations -----------------------------------------------------------------------


class ConversationViewSet(
    OrganizationScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ConversationSerializer
    filterset_fields = ["customer", "channel", "status", "sentiment_label"]
    ordering_fields = ["started_at"]
    queryset = Conversation.objects.none()

    def get_queryset(self) -> QuerySet[Conversation]:
        return selectors.conversation_list(organization=self.organization)

    @extend_schema(request=ConversationCreateSerializer, responses=ConversationSerializer)
    def create(self, request: Request) -> Response:
        data = ConversationCreateSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        conversation = services.conversation_start(**data.validated_data)
        return Response(ConversationSerializer(conversation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MessageCreateSerializer, responses=MessageSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def messages(self, request: Request, pk: str | None = None) -> Response:
        conversation = self.get_object()
        if request.method == "POST":
            data = MessageCreateSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            fields = data.validated_data
            if fields["role"] == "agent":
                # Staff answering: the reply service, with or without a client id (first-response
                # clock, ticket event, assignment); a retried id returns the stored reply.
                repeat = (
                    bool(fields["client_message_id"])
                    and conversation.messages.filter(client_message_id=fields["client_message_id"]).exists()
                )
                message = services.conversation_reply(
                    conversation=conversation,
                    author=request.user,
                    text=fields["text"],
                    client_message_id=fields["client_message_id"],
                    attachment=fields["file"],
                )
                return Response(MessageSerializer(message).data, status=status.HTTP_200_OK if repeat else 201)
            attachment = fields.pop("file")
            message, created = services.message_create(
                conversation=conversation, author=None, attachment=attachment, **fields
            )
            code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
            return Response(MessageSerializer(message).data, status=code)
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            return Response({"after": ["A whole number of the last seen sequence."]}, status=400)
        messages = selectors.conversation_messages(conversation=conversation, after_seq=int(after))
        page = self.paginate_queryset(messages)
        return self.get_paginated_response(MessageSerializer(page, many=True).data)


# --- macros ------------------------------------------------------------------------------


class MacroViewSet(OrganizationScopedMixin, viewsets.ModelViewSet):
    serializer_class = MacroSerializer
    search_fields = ["name", "reply"]
    queryset = Macro.objects.none()

    def get_queryset(self) -> QuerySet[Macro]:
        return selectors.macro_list(organization=self.organization)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = MacroSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        macro = services.macro_create(organization=self.organization, **data.validated_data)
        return Response(MacroSerializer(macro).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        macro = self.get_object()
        data = MacroSerializer(macro, data=request.data, partial=kwargs.get("partial", False))
        data.is_valid(raise_exception=True)
        return Response(MacroSerializer(services.macro_update(macro=macro, **data.validated_data)).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.macro_delete(macro=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
