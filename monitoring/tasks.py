from celery import shared_task

from monitoring.services import heartbeat_record


@shared_task(ignore_result=True, soft_time_limit=20, time_limit=30)
def heartbeat() -> None:
    heartbeat_record(name="celery")


@shared_task(soft_time_limit=120, time_limit=150)
def prune() -> dict[str, int]:
    """Daily on beat: drop request profiles past their retention and task failures older than 30 days."""
    from datetime import timedelta

    from django.utils import timezone

    from monitoring.models import TaskFailure
    from monitoring.profiling import request_profiles_prune

    old = TaskFailure.objects.filter(failed_at__lt=timezone.now() - timedelta(days=30))
    return {"profiles": request_profiles_prune(), "task_failures": old.delete()[0]}
