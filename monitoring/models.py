from django.db import models


class Heartbeat(models.Model):
    """Last time a background process proved it was alive (the Celery worker, via beat)."""

    name = models.CharField(max_length=50, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class TaskFailure(models.Model):
    """A Celery task that raised after its retries ran out, recorded by the failure handler."""

    task_name = models.CharField(max_length=200, db_index=True)
    task_id = models.CharField(max_length=64, blank=True)
    args = models.TextField(blank=True, help_text="The task's arguments (ids, never message text).")
    exception = models.CharField(max_length=500)
    traceback = models.TextField(blank=True)
    failed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-failed_at"]

    def __str__(self) -> str:
        return f"{self.task_name} failed: {self.exception[:60]}"


class RequestProfile(models.Model):
    """One profiled HTTP request: its pyinstrument call tree, slowest functions and SQL."""

    class Reason(models.TextChoices):
        SAMPLED = "sampled", "Sampled"
        SLOW = "slow", "Slower than the threshold"

    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    view = models.CharField(max_length=200, blank=True, db_index=True)
    status = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField(db_index=True)
    sql_count = models.PositiveIntegerField(default=0)
    sql_ms = models.FloatField(default=0)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    request_id = models.CharField(max_length=64, blank=True)
    call_tree = models.TextField(help_text="pyinstrument's text rendering of the call tree.")
    slowest = models.JSONField(default=list, help_text="Functions by time spent in them (self time).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.duration_ms:.0f} ms"
