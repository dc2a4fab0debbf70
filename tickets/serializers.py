"""Shapes of the support-desk API. Input serializers validate; output serializers render."""

from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tenancy.models import Team
from tenancy.services import staff_organization
from tickets.attachments import attachments_frame
from tickets.models import (
    Channel,
    Conversation,
    Customer,
    Macro,
    Message,
    MessageRole,
    Priority,
    SentimentLabel,
    Ticket,
    TicketEvent,
    TicketNote,
    TicketStatus,
)
from tickets.rules import MESSAGE_MAX_CHARS
from tickets.selectors import ticket_sla_state


@extend_schema_field(OpenApiTypes.INT)
class OrganizationScopedPK(serializers.PrimaryKeyRelatedField):
    """A primary key that only resolves to rows of the requesting staff member's organization."""

    def __init__(self, model: Any, org_path: str = "organization", **kwargs: Any) -> None:
        self.model = model
        self.org_path = org_path
        super().__init__(**kwargs)

    def get_queryset(self) -> Any:
        organization = staff_organization(self.context["request"].user)
        return self.model._default_manager.filter(**{self.org_path: organization})


# --- customers ---------------------------------------------------------------------------


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "email",
            "phone",
            "external_id",
            "vip_tier",
            "satisfaction_score",
            "language",
            "created_at",
            "last_seen_at",
        ]
        read_only_fields = ["satisfaction_score", "created_at", "last_seen_at"]
        # Uniqueness of external_id is a service rule (it reports a clear message).
        validators: list[Any] = []


# --- tickets -----------------------------------------------------------------------------


class TicketSerializer(serializers.ModelSerializer):
    customer_name = serializers.CharField(source="customer.__str__", read_only=True)
    assignee_username = serializers.CharField(source="assignee.username", read_only=True, default=None, allow_null=True)
    tags = serializers.SerializerMethodField()
    sla_state = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = [
            "id",
            "subject",
            "status",
            "priority",
            "channel",
            "customer",
            "customer_name",
            "conversation",
            "assignee",
            "assignee_username",
            "team",
            "tags",
            "created_at",
            "updated_at",
            "first_response_due",
            "resolution_due",
            "first_responded_at",
            "resolved_at",
            "closed_at",
            "sla_state",
            "merged_into",
            "csat_score",
            "csat_comment",
        ]
        read_only_fields = fields

    def get_tags(self, ticket: Ticket) -> list[str]:
        return [tag.name for tag in ticket.tags.all()]

    def get_sla_state(self, ticket: Ticket) -> str:
        return ticket_sla_state(ticket, self.context.get("now") or timezone.now())


class TicketCreateSerializer(serializers.Serializer):
    subject = serializers.CharField(max_length=250)
    customer = OrganizationScopedPK(Customer)
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.MEDIUM)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.API)
    conversation = OrganizationScopedPK(Conversation, required=False, allow_null=True)
    team = OrganizationScopedPK(Team, required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)


class TicketUpdateSerializer(serializers.Serializer):
    subject = serializers.CharField(max_length=250, required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    status = serializers.ChoiceField(choices=TicketStatus.choices, required=False)
    assignee = OrganizationScopedPK(
        get_user_model(), org_path="staff_profile__organization", required=False, allow_null=True
    )
    team = OrganizationScopedPK(Team, required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)


class TicketTransitionSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=TicketStatus.choices)
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class TicketAssignSerializer(serializers.Serializer):
    assignee = OrganizationScopedPK(get_user_model(), org_path="staff_profile__organization", allow_null=True)


class TicketReplySerializer(serializers.Serializer):
    text = serializers.CharField(max_length=MESSAGE_MAX_CHARS)


class TicketMergeSerializer(serializers.Serializer):
    into = OrganizationScopedPK(Ticket)


class TicketMacroSerializer(serializers.Serializer):
    macro = OrganizationScopedPK(Macro)


class TicketCsatSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class TicketNoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = TicketNote
        fields = ["id", "author", "body", "created_at"]
        read_only_fields = ["id", "author", "created_at"]


class TicketEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = TicketEvent
        fields = ["id", "kind", "field", "before", "after", "message", "actor", "created_at"]
        read_only_fields = fields


# --- conversations -----------------------------------------------------------------------


class ConversationSerializer(serializers.ModelSerializer):
    # Blank until the customer's first message is scored (the schema says so).
    sentiment_label = serializers.ChoiceField(choices=SentimentLabel.choices, allow_blank=True, read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "customer",
            "channel",
            "status",
            "started_at",
            "ended_at",
            "last_seq",
            "sentiment_score",
            "sentiment_label",
        ]
        read_only_fields = fields


class ConversationCreateSerializer(serializers.Serializer):
    customer = OrganizationScopedPK(Customer)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.API)


class MessageSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, default=None, allow_null=True)
    sentiment = serializers.SerializerMethodField()
    attachments = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = ["id", "seq", "role", "text", "author", "client_message_id", "metadata", "sentiment", "attachments",
                  "created_at"]  # fmt: skip
        read_only_fields = fields

    def get_attachments(self, message: Message) -> list[dict[str, Any]]:
        """Name, type, size and a signed link that expires (CONCIERGE_ATTACHMENT_URL_MAX_AGE)."""
        return attachments_frame(message)

    def get_sentiment(self, message: Message) -> dict[str, Any] | None:
        record = getattr(message, "sentiment", None)
        return {"score": record.score, "label": record.label} if record else None


class MessageCreateSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=MESSAGE_MAX_CHARS, required=False, default="", allow_blank=True)
    file = serializers.FileField(required=False, default=None, allow_null=True, help_text="An image or a PDF.")
    role = serializers.ChoiceField(
        choices=[(MessageRole.AGENT, "Agent"), (MessageRole.CUSTOMER, "Customer"), (MessageRole.SYSTEM, "System")],
        default=MessageRole.AGENT,
    )
    client_message_id = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)


# --- macros ------------------------------------------------------------------------------


class MacroSerializer(serializers.ModelSerializer):
    class Meta:
        model = Macro
        fields = ["id", "name", "reply", "set_status", "set_priority", "add_tags", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list[Any] = []


# --- staff search ------------------------------------------------------------------------


class DeskHitSerializer(serializers.Serializer):
    ticket = TicketSerializer()
    score = serializers.FloatField()
    matched = serializers.CharField()
    snippet = serializers.CharField()


class DeskSearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    results = DeskHitSerializer(many=True)
