"""Intent training data and trained intent models, per organization, versioned."""

from django.conf import settings
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
