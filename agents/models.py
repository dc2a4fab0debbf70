"""Intent training data and trained intent models, per organization, versioned; the chat
widget's settings and the websites allowed to embed it."""

import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from tenancy.models import Organization


class IntentExample(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="intent_examples")
    intent = models.SlugField(max_length=64)
    text = models.CharField(max_length=500)
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
    """A sentiment classifier trained on labelled messages of one language (train_sentiment).
    When one is active for a message's language it scores the message; otherwise the built-in
    lexicon engines do."""

    language = models.CharField(max_length=10)
    labels = models.JSONField(default=list)
    source = models.CharField(max_length=250, blank=True, help_text="What it was trained on.")

    class Meta:
        ordering = ["language", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["language", "version"], name="sentiment_model_unique_version"),
            models.UniqueConstraint(
                fields=["language"], condition=models.Q(is_active=True), name="sentiment_model_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.language} v{self.version}{' (active)' if self.is_active else ''}"


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
