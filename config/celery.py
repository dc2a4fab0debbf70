"""The Celery app. Tasks live in each app's ``tasks.py``; settings come from CELERY_* in Django settings."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("concierge")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work, defined in code. `manage.py beat_schedule_load` writes it into
# django-celery-beat's tables (runstack and the deploy kit run it before beat starts).
app.conf.beat_schedule = {
    "heartbeat": {
        "task": "monitoring.tasks.heartbeat",
        "schedule": float(os.environ.get("CONCIERGE_HEARTBEAT_SECONDS", "30")),
    },
    "route-backlog": {"task": "tickets.tasks.route_backlog", "schedule": 60.0},
    "email-mailboxes": {"task": "agents.tasks.email_mailboxes_poll", "schedule": 60.0},
    "sla-check": {"task": "tickets.tasks.sla_check", "schedule": 60.0},
    "housekeeping": {"task": "tickets.tasks.housekeeping", "schedule": 3600.0},
    "monitoring-prune": {"task": "monitoring.tasks.prune", "schedule": crontab(minute=40, hour=3)},
    "reports-daily": {"task": "tickets.tasks.reports_refresh", "schedule": crontab(minute=15), "args": ["day"]},
    "reports-weekly": {
        "task": "tickets.tasks.reports_refresh",
        "schedule": crontab(minute=30, hour=0, day_of_week="mon"),
        "args": ["week"],
    },
}
