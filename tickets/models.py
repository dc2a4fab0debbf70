"""Customers, conversations, messages and tickets: the support desk.

Every row belongs to an Organization (the tenant). Writes go through ``tickets.services``.
"""

import uuid

from django import forms
from django.conf import settings
from django.core.validators import EmailValidator, MaxLengthValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenancy.models import Organization, Team
from tickets.fields import BlindIndexField, EncryptedTextField


class VipTier(models.TextChoices):
    NONE = "none", "None"
    SILVER = "silver", "Silver"
    GOLD = "gold", "Gold"
    PLATINUM = "platinum", "Platinum"


class Customer(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="customers")
    name = models.CharField(max_length=200, blank=True)
    # Personal data, encrypted at rest; email_hash answers exact lookups by email.
    email = EncryptedTextField(blank=True, validators=[EmailValidator()], form_class=forms.EmailField)
    email_hash = BlindIndexField(source="email")
    phone = EncryptedTextField(blank=True, validators=[MaxLengthValidator(40)], form_class=forms.CharField)
    erased_at = models.DateTimeField(null=True, blank=True, help_text="Personal data erased on request.")
    email_bounced_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Mail to this address bounced; nothing is emailed to it until it changes.",
    )
    external_id = models.CharField(max_length=100, blank=True)
    vip_tier = models.CharField(max_length=10, choices=VipTier.choices, default=VipTier.NONE)
    satisfaction_score = models.FloatField(null=True, blank=True, help_text="Mean CSAT (1-5) over rated tickets.")
    language = models.CharField(max_length=10, default="en")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"],
                condition=~Q(external_id=""),
                name="customer_unique_external_id_per_org",
            )
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or f"Customer #{self.pk}"

    @property
    def is_vip(self) -> bool:
        return self.vip_tier != VipTier.NONE


class Channel(models.TextChoices):
    WEB = "web", "Web chat"
    EMAIL = "email", "Email"
    API = "api", "API"
    WHATSAPP = "whatsapp", "WhatsApp"
    TELEGRAM = "telegram", "Telegram"
    SMS = "sms", "SMS"
    WECHAT = "wechat", "WeChat"
    VOICE = "voice", "Phone"


class SentimentLabel(models.TextChoices):
    VERY_NEGATIVE = "very_negative", "Very negative"
    NEGATIVE = "negative", "Negative"
    NEUTRAL = "neutral", "Neutral"
    POSITIVE = "positive", "Positive"
    VERY_POSITIVE = "very_positive", "Very positive"


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        HANDED_OFF = "handed_off", "Handed off to a human"
        ENDED = "ended", "Ended"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="conversations")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="conversations")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.WEB)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(default=0, help_text="Sequence number of the newest message.")
    sentiment_score = models.FloatField(null=True, blank=True, help_text="Latest customer sentiment, -1..1.")
    sentiment_label = models.CharField(max_length=20, choices=SentimentLabel.choices, blank=True)
    reopened_at = models.DateTimeField(null=True, blank=True, help_text="Last time the customer wrote after it ended.")
    csat_score = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The customer's 1-5 rating.")
    csat_comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Conversation #{self.pk} with {self.customer}"


class MessageRole(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    BOT = "bot", "Bot"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=MessageRole.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = EncryptedTextField()
    seq = models.PositiveIntegerField(help_text="Per-conversation sequence number, from 1.")
    client_message_id = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_unique_seq"),
            models.UniqueConstraint(
                fields=["conversation", "client_message_id"],
                condition=~Q(client_message_id=""),
                name="message_unique_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.role}: {self.text[:40]}"


def attachment_path(instance: "Attachment", filename: str) -> str:
    """Stored under a random name: the customer's file name never reaches the file system."""
    suffix = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}.get(
        instance.content_type, ".pdf"
    )
    return f"attachments/{instance.organization_id}/{uuid.uuid4().hex}{suffix}"


class Attachment(models.Model):
    """An image or PDF sent with a message, by a customer or an agent. Served only through
    signed, expiring links (``tickets.services.attachments``)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=200)
    name = models.CharField(max_length=150, help_text="The file name as sent, shown to people only.")
    content_type = models.CharField(max_length=50)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "pk"]

    def __str__(self) -> str:
        return self.name


class SentimentRecord(models.Model):
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="sentiment")
    score = models.FloatField(help_text="-1 (very negative) .. 1 (very positive)")
    label = models.CharField(max_length=20, choices=SentimentLabel.choices)
    corrected_label = models.CharField(
        max_length=10,
        blank=True,
        choices=[("negative", "Negative"), ("neutral", "Neutral"), ("positive", "Positive")],
        help_text="What a staff member says the message's mood was; corrected messages train the "
        "organization's own sentiment model (train_sentiment --org).",
    )
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(score__gte=-1) & Q(score__lte=1), name="sentiment_score_range")
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.score:+.2f})"


class Tag(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tags")
    name = models.SlugField(max_length=50)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="tag_unique_name_per_org")]

    def __str__(self) -> str:
        return self.name


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class TicketStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    PENDING = "pending", "Pending"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


class SlaPolicy(models.Model):
    """An organization's SLA targets for one priority (optionally one VIP tier)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sla_policies")
    priority = models.CharField(max_length=10, choices=Priority.choices)
    vip_tier = models.CharField(
        max_length=10, choices=VipTier.choices, blank=True, help_text="Blank: applies to every tier."
    )
    first_response_minutes = models.PositiveIntegerField()
    resolution_minutes = models.PositiveIntegerField()

    class Meta:
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"
        constraints = [
            models.UniqueConstraint(fields=["organization", "priority", "vip_tier"], name="sla_policy_unique")
        ]

    def __str__(self) -> str:
        tier = self.vip_tier or "any tier"
        return f"{self.priority} / {tier}: {self.first_response_minutes}m / {self.resolution_minutes}m"


class Ticket(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tickets")
    subject = models.CharField(max_length=250)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tickets")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=20, choices=TicketStatus.choices, default=TicketStatus.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    tags = models.ManyToManyField(Tag, blank=True, related_name="tickets")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.WEB)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    first_response_due = models.DateTimeField(null=True, blank=True)
    resolution_due = models.DateTimeField(null=True, blank=True)
    first_response_at_risk_at = models.DateTimeField(null=True, blank=True)
    resolution_at_risk_at = models.DateTimeField(null=True, blank=True)
    sla_paused_at = models.DateTimeField(null=True, blank=True, help_text="Set while pending: the clock is paused.")
    sla_paused_seconds = models.PositiveIntegerField(default=0, help_text="Time spent paused so far.")
    sla_status = models.CharField(
        max_length=20,
        blank=True,
        default="ok",
        help_text="Last state recorded by the SLA check (ok, at_risk, breached).",
    )
    first_responded_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_tickets"
    )
    csat_score = models.PositiveSmallIntegerField(null=True, blank=True)
    csat_comment = models.TextField(blank=True)
    escalation_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When staff were emailed about this escalation (sent once)."
    )
    csat_requested_at = models.DateTimeField(null=True, blank=True)
    csat_request_channel = models.CharField(
        max_length=10, blank=True, help_text="Where the rating was asked for: widget or email."
    )
    assignee_seen_seq = models.PositiveIntegerField(
        default=0, help_text="The conversation's last message the assignee has seen (unread marker)."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "status"]),
            models.Index(fields=["organization", "resolution_due"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(csat_score__isnull=True) | (Q(csat_score__gte=1) & Q(csat_score__lte=5)),
                name="ticket_csat_range",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class TicketEvent(models.Model):
    """Append-only audit row for one change to a ticket, written by services only."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        STATUS = "status", "Status changed"
        PRIORITY = "priority", "Priority changed"
        ASSIGNED = "assigned", "Assigned"
        TEAM = "team", "Team changed"
        SUBJECT = "subject", "Subject changed"
        TAGS = "tags", "Tags changed"
        REPLIED = "replied", "Replied"
        NOTE = "note", "Internal note"
        MACRO = "macro", "Macro applied"
        MERGED = "merged", "Merged"
        SLA = "sla", "SLA"
        CSAT = "csat", "CSAT"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    field = models.CharField(max_length=50, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on #{self.ticket_id}"


class TicketNote(models.Model):
    """Internal note: seen by staff only, never sent to the customer."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.body[:50]


class Macro(models.Model):
    """Canned response: a reply text (placeholders {customer_name}, {agent_name}, {ticket_id})
    plus optional changes to status, priority and tags."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="macros")
    name = models.CharField(max_length=100)
    reply = models.TextField(blank=True)
    set_status = models.CharField(max_length=20, choices=TicketStatus.choices, blank=True)
    set_priority = models.CharField(max_length=10, choices=Priority.choices, blank=True)
    add_tags = models.CharField(max_length=200, blank=True, help_text="Comma-separated tag names.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="macro_unique_name_per_org")]

    def __str__(self) -> str:
        return self.name


class ReportPeriod(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"


class Report(models.Model):
    """One organization's figures for one day or one ISO week, as built by ``tickets.reports``."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="reports")
    period = models.CharField(max_length=10, choices=ReportPeriod.choices)
    start = models.DateField(help_text="First day of the period (a Monday for weeks).")
    data = models.JSONField(default=dict)
    built_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start", "period"]
        constraints = [models.UniqueConstraint(fields=["organization", "period", "start"], name="report_unique_period")]

    def __str__(self) -> str:
        return f"{self.organization} {self.get_period_display().lower()} from {self.start}"


class StaffNotification(models.Model):
    """Something a staff member should look at: a colleague mentioned them in a note."""

    class Kind(models.TextChoices):
        MENTION = "mention", "Mentioned in a note"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notifications")
    note = models.ForeignKey(TicketNote, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MENTION)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True, help_text="When the colleague was emailed (once).")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["recipient", "read_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on #{self.ticket_id}"


class ReplySuggestion(models.Model):
    """A reply the assistant drafted for an agent, and what the agent did with it."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Not used yet"
        SENT = "sent", "Sent as drafted"
        EDITED = "edited", "Edited, then sent"
        DISCARDED = "discarded", "Discarded"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="suggestions")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = EncryptedTextField()
    citations = models.JSONField(default=list, blank=True)
    in_reply_to_seq = models.PositiveIntegerField(default=0, help_text="The customer message it answers.")
    generated = models.BooleanField(default=False, help_text="Written by the configured LLM.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self) -> str:
        return f"Suggestion for #{self.ticket_id} ({self.outcome})"
