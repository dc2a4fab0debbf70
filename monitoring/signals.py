"""Celery's task_failure signal, recorded: every task that gives up leaves a TaskFailure row
(browsable in admin) and an error log line, so a failing background job is never silent."""

import logging
from typing import Any

from celery.signals import task_failure

logger = logging.getLogger("concierge.tasks")


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
