"""One place that turns rule violations into HTTP 4xx responses with a clear message, and a
server out of database connections into 503 with Retry-After instead of a bare 500."""

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError, database_refusal
from tickets.errors import RateLimited

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        body = {"detail": str(exc)}
        if exc.status_code != status.HTTP_400_BAD_REQUEST:
            body["code"] = exc.code
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return Response(body, status=exc.status_code, headers=headers)
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    refusal = database_refusal(exc)
    if refusal is not None:
        # No pooled connection came free within DATABASE_POOL_TIMEOUT: the request did nothing,
        # and the client may send it again (busy under overload, unavailable in an outage).
        logger.warning("%s: no database connection within the pool timeout (%s)", refusal.code, exc)
        return Response(
            {"detail": refusal.message, "code": refusal.code},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(refusal.retry_after)},
        )
    return drf_exception_handler(exc, context)
