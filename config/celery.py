"""The Celery app. Tasks live in each app's ``tasks.py``; settings come from CELERY_* in Django settings."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("concierge")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work, defined in code; django-celery-beat's scheduler copies it into the database.
app.conf.beat_schedule = {
    "heartbeat": {
        "task": "monitoring.tasks.heartbeat",
        "schedule": float(os.environ.get("CONCIERGE_HEARTBEAT_SECONDS", "30")),
    },
    "route-backlog": {"task": "tickets.tasks.route_backlog", "schedule": 60.0},
    "sla-check": {"task": "tickets.tasks.sla_check", "schedule": 60.0},
    "housekeeping": {"task": "tickets.tasks.housekeeping", "schedule": 3600.0},
}
