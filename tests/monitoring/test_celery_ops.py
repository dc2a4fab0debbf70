"""Celery operations: the failure handler records tasks that give up, and the beat schedule
defined in code is loaded into the database beat reads."""

import pytest
from celery import shared_task
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from monitoring.models import TaskFailure

pytestmark = pytest.mark.django_db


@shared_task(name="tests.always_fails")
def always_fails(ticket_id: int) -> None:
    raise RuntimeError(f"ticket {ticket_id} broke the task")


def test_a_failing_task_leaves_a_failure_row_and_an_error_log(monkeypatch, caplog):
    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)
    result = always_fails.delay(42)
    assert result.failed()
    [failure] = TaskFailure.objects.all()
    assert failure.task_name == "tests.always_fails" and failure.task_id == result.id
    assert "ticket 42 broke the task" in failure.exception and "[42]" in failure.args
    assert "RuntimeError" in failure.traceback
    assert any("tests.always_fails" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_task_failures_are_for_the_operator_only(client, agent, admin_user):
    TaskFailure.objects.create(task_name="tickets.tasks.sla_check", exception="boom")
    client.force_login(agent)
    assert client.get("/admin/monitoring/taskfailure/").status_code == 403
    client.force_login(admin_user)
    page = client.get("/admin/monitoring/taskfailure/")
    assert page.status_code == 200 and "tickets.tasks.sla_check" in page.content.decode()


def test_beat_schedule_is_loaded_from_code_and_kept_in_step(capsys):
    call_command("beat_schedule_load")
    out = capsys.readouterr().out
    names = set(celery_app.conf.beat_schedule)
    assert names <= set(PeriodicTask.objects.values_list("name", flat=True))
    assert f"{len(names)} added" in out
    sla = PeriodicTask.objects.get(name="sla-check")
    assert sla.task == "tickets.tasks.sla_check" and sla.interval.every == 60
    assert sla.interval.period == IntervalSchedule.SECONDS
    weekly = PeriodicTask.objects.get(name="reports-weekly")
    assert weekly.crontab.day_of_week == "mon" and weekly.args == '["week"]'
    assert isinstance(weekly.crontab, CrontabSchedule)

    # Run again: nothing changes. An entry the code dropped goes; a hand-made one stays.
    stale = PeriodicTask.objects.create(name="old-job", task="tickets.tasks.gone", interval=sla.interval)
    mine = PeriodicTask.objects.create(name="by-hand", task="celery.backend_cleanup", interval=sla.interval)
    PeriodicTask.objects.filter(name="sla-check").update(task="tickets.tasks.renamed")
    call_command("beat_schedule_load")
    out = capsys.readouterr().out
    assert "updated  sla-check" in out and "removed  old-job" in out
    assert f"{len(names) - 1} unchanged" in out
    assert not PeriodicTask.objects.filter(pk=stale.pk).exists() and PeriodicTask.objects.filter(pk=mine.pk).exists()
    assert PeriodicTask.objects.get(name="sla-check").task == "tickets.tasks.sla_check"
