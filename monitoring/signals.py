"""Celery signals: every task's log lines carry its id; outcomes are counted for /metrics;
and every task that gives up leaves a TaskFailure row (browsable in admin) and an error log
line, so a failing background job is never silent."""

import logging
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun, task_retry, task_success

from monitoring import context
from monitoring.metrics import task_outcome_count

logger = logging.getLogger("concierge.tasks")
_tokens: dict[str, Any] = {}


@task_prerun.connect
def task_context_enter(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _tokens[task_id] = context.task_id.set(task_id)


@task_postrun.connect
def task_context_leave(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id or "", None)
    if token is not None:
        context.task_id.reset(token)


@task_success.connect
def task_success_count(sender: Any = None, **_: Any) -> None:
    task_outcome_count(getattr(sender, "name", str(sender)), "succeeded")


@task_retry.connect
def task_retry_count(sender: Any = None, **_: Any) -> None:
    task_outcome_count(getattr(sender, "name", str(sender)), "retried")


@task_failure.connect
def task_failure_record(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    from monitoring.services import task_failure_store

    name = getattr(sender, "name", str(sender))
    task_outcome_count(name, "failed")
    logger.error("task %s[%s] failed: %r", name, task_id, exception)
    try:
        task_failure_store(
            task_name=name,
            task_id=task_id or "",
            args=f"{list(args or [])!r} {dict(kwargs or {})!r}",
            exception=repr(exception),
            traceback=str(einfo or ""),
        )
    except Exception:  # the database may be what failed; the log line above still stands
        logger.exception("could not record the failure of %s[%s]", name, task_id)
