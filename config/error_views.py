"""The project's 500 handler: a server out of database connections answers every page and
endpoint with 503 and Retry-After, as the DRF API does (tickets.api_errors), instead of a bare 500:
admin, the console, the demo site, the survey and attachment links, health and metrics. Anything
else is Django's own 500."""

import logging
import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import get_language
from django.views import defaults

from config.errors import BUSY_MESSAGE, BUSY_RETRY_AFTER, database_busy

logger = logging.getLogger(__name__)


def wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return request.path.startswith("/api/") or ("json" in accept and "html" not in accept)


def server_error(request: HttpRequest) -> HttpResponse:
    """Called by Django while it handles the exception, so the exception is sys.exc_info()'s."""
    if not database_busy(sys.exc_info()[1]):
        return defaults.server_error(request)
    logger.warning("busy: no database connection free within the pool timeout (%s %s)", request.method, request.path)
    response: HttpResponse
    if wants_json(request):
        response = JsonResponse({"detail": BUSY_MESSAGE, "code": "busy"}, status=503)
    else:
        # Rendered without the request's context, as Django's own 500 page is: its context
        # processors (the signed-in user) would reach for the database that is out of reach.
        page = loader.get_template("busy.html").render({"language": get_language() or "en"})
        response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(BUSY_RETRY_AFTER)
    return response
