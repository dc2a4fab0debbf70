from celery import shared_task

from monitoring.services import heartbeat_record


@shared_task(ignore_result=True, soft_time_limit=20, time_limit=30)
def heartbeat() -> None:
    heartbeat_record(name="celery")
