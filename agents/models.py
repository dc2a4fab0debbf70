"""Intent training data and trained intent models, per organization, versioned; sentiment
models; A/B tests of a candidate version against the active one; the chat widget's settings and
the websites allowed to embed it."""

import hashlib
import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from agents.actions.models import AssistantAction as AssistantAction  # Django finds the model here
from agents.messaging.models import ChannelIdentity as ChannelIdentity
from agents.messaging.models import MessagingAccount as MessagingAccount
from agents.messaging.models import MessagingRecord as MessagingRecord
from agents.messaging.models import VoiceCall as VoiceCall
from tenancy.models import Organization
from tickets.fields import EncryptedTextField

HELD_BACK_EVERY = 5


def held_back_for(text: str) -> bool:
    """About one example in HELD_BACK_EVERY, chosen by its text (so the same sentence is held
    back however it arrives): never trained on, every version is measured on them."""
    return hashlib.sha256(text.encode()).digest()[0] % HELD_BACK_EVERY == 0


class IntentExample(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="intent_examples")
    intent = models.SlugField(
        max_length=64, help_text='The intent, or "fallback" for questions the assistant should not answer.'
    )
    text = models.CharField(max_length=500)
    held_back = models.BooleanField(
        default=False,
        help_text="Never trained on: every model version is measured on the held-back examples, and a version "
        "that scores worse on them than the active one needs an explicit override to be activated.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["intent", "text"]
        constraints = [models.UniqueConstraint(fields=["organization", "intent", "text"], name="intent_example_unique")]

    def __str__(self) -> str:
        return f"{self.intent}: {self.text[:50]}"


class TrainedClassifier(models.Model):
    """What every stored classifier has: a version, whether it is the one in use, its figures
    on held-back data, and the pickled model itself (agents.intents.IntentClassifier)."""

    version = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False)
    examples = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True, help_text="Figures on a held-back share of the examples.")
    blob = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class IntentModel(TrainedClassifier):
    """One trained classifier. Exactly one per organization is active; servers notice a change
    of the active version on their next message and load it, with no restart."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="intent_models")
    intents = models.JSONField(default=list)
    threshold = models.FloatField(default=0.3)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "version"], name="intent_model_unique_version"),
            models.UniqueConstraint(
                fields=["organization"], condition=models.Q(is_active=True), name="intent_model_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version}{' (active)' if self.is_active else ''}"


class SentimentModel(TrainedClassifier):
    """A sentiment classifier trained on labelled messages of one language (train_sentiment):
    the operator's, for every organization (no organization), or one organization's own, from
    the messages its staff corrected. A message is scored by its organization's active model for
    its language, else the operator's, else the model shipped with Concierge."""

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="sentiment_models"
    )
    language = models.CharField(max_length=10)
    labels = models.JSONField(default=list)
    source = models.CharField(max_length=250, blank=True, help_text="What it was trained on.")

    class Meta:
        ordering = ["language", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["language", "version"],
                condition=models.Q(organization__isnull=True),
                name="sentiment_model_unique_version",
            ),
            models.UniqueConstraint(
                fields=["organization", "language", "version"],
                condition=models.Q(organization__isnull=False),
                name="sentiment_model_org_unique_version",
            ),
            models.UniqueConstraint(
                fields=["language"],
                condition=models.Q(is_active=True, organization__isnull=True),
                name="sentiment_model_one_active",
            ),
            models.UniqueConstraint(
                fields=["organization", "language"],
                condition=models.Q(is_active=True, organization__isnull=False),
                name="sentiment_model_org_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.language} v{self.version}{' (active)' if self.is_active else ''}"


class ModelKind(models.TextChoices):
    INTENT = "intent", "Intent model"
    SENTIMENT = "sentiment", "Sentiment model"


class ExperimentArm(models.TextChoices):
    CONTROL = "control", "Active version"
    CANDIDATE = "candidate", "Candidate version"


class ModelExperiment(models.Model):
    """An A/B test: a share of an organization's conversations is answered with a candidate
    model version, the rest with the active one. Which arm a conversation is in follows from
    the experiment and the conversation alone, so it never changes mid-conversation. Reports
    compare the arms; promoting activates the candidate, rolling back ends the test."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PROMOTED = "promoted", "Candidate promoted"
        ROLLED_BACK = "rolled_back", "Rolled back"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="model_experiments")
    kind = models.CharField(max_length=10, choices=ModelKind.choices, default=ModelKind.INTENT)
    language = models.CharField(max_length=10, blank=True, help_text="Sentiment tests: the messages' language.")
    candidate_version = models.PositiveIntegerField()
    control_version = models.PositiveIntegerField(null=True, blank=True, help_text="Active when the test began.")
    share = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="Percent of conversations answered with the candidate.",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "model A/B test"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind"],
                condition=models.Q(status="running"),
                name="model_experiment_one_running",
            ),
            models.CheckConstraint(condition=models.Q(share__gte=1, share__lte=99), name="model_experiment_share"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.candidate_version} on {self.share}%"

    def arm_for(self, conversation_id: int) -> str:
        return experiment_arm(self.pk, self.share, conversation_id)


def experiment_arm(experiment_id: int, share: int, conversation_id: int) -> str:
    digest = hashlib.sha256(f"{experiment_id}:{conversation_id}".encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    return ExperimentArm.CANDIDATE if bucket < share else ExperimentArm.CONTROL


class ExperimentAssignment(models.Model):
    """A conversation answered within an A/B test, and in which arm."""

    experiment = models.ForeignKey(ModelExperiment, on_delete=models.CASCADE, related_name="assignments")
    conversation = models.ForeignKey("tickets.Conversation", on_delete=models.CASCADE, related_name="+")
    arm = models.CharField(max_length=10, choices=ExperimentArm.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "conversation"], name="experiment_assignment_unique")
        ]

    def __str__(self) -> str:
        return f"conversation {self.conversation_id}: {self.arm}"


def identity_secret_new() -> str:
    return secrets.token_urlsafe(32)


class PrechatForm(models.TextChoices):
    NONE = "none", "No form"
    OPTIONAL = "optional", "Name and email, optional"
    REQUIRED = "required", "Name and email, required"


class WidgetPosition(models.TextChoices):
    RIGHT = "right", "Bottom right"
    LEFT = "left", "Bottom left"


class WidgetLocale(models.TextChoices):
    AUTO = "", "The visitor's browser language"
    EN = "en", "English"
    ZH_HANS = "zh-hans", "Simplified Chinese"


class WidgetSettings(models.Model):
    """How an organization's chat widget looks, greets and identifies visitors."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="widget")
    title = models.CharField(max_length=60, blank=True, help_text="Panel title; blank: the organization's name.")
    greeting = models.CharField(
        max_length=300, blank=True, help_text="First line a visitor sees; blank: the built-in greeting."
    )
    color = models.CharField(
        max_length=7,
        default="#264b5d",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour as #RRGGBB.")],
        help_text="Launcher and header colour, #RRGGBB.",
    )
    position = models.CharField(max_length=5, choices=WidgetPosition.choices, default=WidgetPosition.RIGHT)
    locale = models.CharField(max_length=7, choices=WidgetLocale.choices, blank=True, default=WidgetLocale.AUTO)
    prechat = models.CharField(max_length=8, choices=PrechatForm.choices, default=PrechatForm.NONE)
    identity_secret = models.CharField(
        max_length=64,
        default=identity_secret_new,
        help_text="Your server signs each signed-in user's id with this (HMAC-SHA256) for identify().",
    )

    class Meta:
        verbose_name = "chat widget"
        verbose_name_plural = "chat widget"

    def __str__(self) -> str:
        return f"Chat widget of {self.organization}"


class WidgetOrigin(models.Model):
    """A website allowed to embed the organization's widget: an exact origin
    (https://shop.example.com) or every subdomain (https://*.example.com)."""

    widget = models.ForeignKey(WidgetSettings, on_delete=models.CASCADE, related_name="origins")
    origin = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["origin"]
        constraints = [models.UniqueConstraint(fields=["widget", "origin"], name="widget_origin_unique")]

    def __str__(self) -> str:
        return self.origin


class EmailAssistantMode(models.TextChoices):
    ANSWER = "answer", "The assistant answers"
    DRAFT = "draft", "The assistant drafts an answer for an agent"
    NEVER = "never", "Every email goes to an agent"


def email_inbound_secret_new() -> str:
    return secrets.token_urlsafe(32)


class EmailChannel(models.Model):
    """An organization's support mailbox: the address customers write to (and replies come
    from), what the assistant does with an email, and the secret a self-hosted MTA's pipe
    presents when it posts raw mail to Concierge."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="email_channel")
    address = models.EmailField(unique=True, help_text="The support address, e.g. support@example.com.")
    display_name = models.CharField(
        max_length=100, blank=True, help_text="Shown beside the address; blank: the organization's name."
    )
    assistant = models.CharField(max_length=6, choices=EmailAssistantMode.choices, default=EmailAssistantMode.ANSWER)
    inbound_secret = EncryptedTextField(
        default=email_inbound_secret_new,
        help_text="An MTA pipe posting raw mail to /api/v1/email/inbound/<slug> sends it as 'Authorization: Bearer …'. "
        "Stored encrypted.",
    )

    class Meta:
        verbose_name = "email channel"

    def __str__(self) -> str:
        return f"{self.display_name or self.organization.name} <{self.address}>"

    def clean(self) -> None:
        self.address = self.address.strip().lower()  # recipients are matched in lower case


class EmailDirection(models.TextChoices):
    INBOUND = "in", "Received"
    OUTBOUND = "out", "Sent"


class EmailStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    IGNORED = "ignored", "Ignored (automatic mail, our own, or too many)"
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class EmailRecord(models.Model):
    """One email in or out of a conversation: its threading headers, the message it became
    or was sent for, and (outbound) its delivery state. Inbound mail keeps its whole text and
    safe HTML for staff; the conversation message holds only what the customer wrote this time."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="emails")
    conversation = models.ForeignKey(
        "tickets.Conversation", null=True, blank=True, on_delete=models.CASCADE, related_name="emails"
    )
    message = models.OneToOneField(
        "tickets.Message", null=True, blank=True, on_delete=models.CASCADE, related_name="email"
    )
    direction = models.CharField(max_length=3, choices=EmailDirection.choices)
    mail_id = models.CharField(
        "Message-ID", max_length=255, help_text="The Message-ID header, with its angle brackets."
    )
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    subject = models.CharField(max_length=255, blank=True)
    sender = EncryptedTextField(blank=True)
    recipient = EncryptedTextField(blank=True)
    full_text = EncryptedTextField(blank=True, help_text="Inbound: the whole text, quoted history included.")
    html = EncryptedTextField(blank=True, help_text="Inbound: the HTML part, made safe.")
    status = models.CharField(max_length=10, choices=EmailStatus.choices)
    reason = models.CharField(max_length=300, blank=True, help_text="Why it was ignored, or why sending failed.")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["organization", "mail_id"], name="email_record_unique_mail_id")]
        indexes = [models.Index(fields=["organization", "conversation", "direction"])]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.mail_id}"


class EmailProviderKind(models.TextChoices):
    MAILGUN = "mailgun", "Mailgun"
    SENDGRID = "sendgrid", "SendGrid (Inbound Parse)"
    POSTMARK = "postmark", "Postmark"
    AMAZON_SES = "amazon_ses", "Amazon SES (through SNS)"
    MAILERSEND = "mailersend", "MailerSend"


class EmailProvider(models.Model):
    """An email provider that posts the organization's inbound mail to Concierge's webhook
    (normalised by django-anymail). ``webhook_secret`` is the ``user:password`` the provider puts
    in the webhook URL's basic auth; ``signing_key`` is what the provider signs its posts with
    (Mailgun's webhook signing key, MailerSend's inbound secret). Both are stored encrypted."""

    channel = models.ForeignKey(EmailChannel, on_delete=models.CASCADE, related_name="providers")
    provider = models.CharField(max_length=12, choices=EmailProviderKind.choices)
    webhook_secret = EncryptedTextField(
        blank=True, help_text="user:password for the webhook URL's basic auth. Stored encrypted."
    )
    signing_key = EncryptedTextField(
        blank=True, help_text="Mailgun: the HTTP webhook signing key; MailerSend: the inbound secret. Stored encrypted."
    )
    enabled = models.BooleanField(default=True)
    last_received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "inbound email provider"
        constraints = [models.UniqueConstraint(fields=["channel", "provider"], name="email_provider_unique")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} for {self.channel}"

    @property
    def organization_id(self) -> int:
        return int(self.channel.organization_id)


class MailboxSecurity(models.TextChoices):
    SSL = "ssl", "IMAPS (TLS from the start, port 993)"
    STARTTLS = "starttls", "STARTTLS (port 143)"
    NONE = "none", "None (a mail server on this machine or a private network only)"


class EmailMailbox(models.Model):
    """A mailbox Concierge polls over IMAP for the organization's email channel. Each message
    taken is flagged (the keyword Concierge, and seen) after it is stored; one stored already
    (same Message-ID) is only flagged, so a poll that died mid-batch or two polls at once take
    each message once."""

    channel = models.ForeignKey(EmailChannel, on_delete=models.CASCADE, related_name="mailboxes")
    host = models.CharField(max_length=200)
    port = models.PositiveIntegerField(default=993)
    security = models.CharField(max_length=8, choices=MailboxSecurity.choices, default=MailboxSecurity.SSL)
    username = models.CharField(max_length=200)
    password = EncryptedTextField(help_text="Stored encrypted.")
    folder = models.CharField(max_length=200, default="INBOX")
    enabled = models.BooleanField(default=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "polled mailbox"

    def __str__(self) -> str:
        return f"{self.username} on {self.host}:{self.port}/{self.folder}"

    @property
    def organization_id(self) -> int:
        return int(self.channel.organization_id)


class PolicyAction(models.TextChoices):
    ANSWER = "answer", "Answer from the knowledge base"
    HANDOFF = "handoff", "Acknowledge and hand to a person (no article)"
    REPLY = "reply", "Reply with the text below (no article)"


class IntentPolicy(models.Model):
    """What the assistant does when a message has this intent, for one organization. Without a
    row the built-in policy applies (agents.dialog.DEFAULT_POLICIES): small talk and thanks get
    a short reply, complaints and billing disputes an acknowledgement and a person."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="intent_policies")
    intent = models.CharField(max_length=100, help_text="The intent's name, as in the intent examples.")
    action = models.CharField(max_length=8, choices=PolicyAction.choices, default=PolicyAction.ANSWER)
    reply_en = models.TextField(
        "reply (English)", blank=True, help_text="For 'reply' (and before a handoff): blank uses the built-in text."
    )
    reply_zh = models.TextField("reply (Simplified Chinese)", blank=True)

    class Meta:
        verbose_name = "intent policy"
        verbose_name_plural = "intent policies"
        constraints = [models.UniqueConstraint(fields=["organization", "intent"], name="intent_policy_unique")]

    def __str__(self) -> str:
        return f"{self.intent}: {self.get_action_display()}"
