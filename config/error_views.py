"""The project's 500 handler: a request that got no database connection in time answers every page
and endpoint with 503 and Retry-After, as the DRF API does (tickets.api_errors), instead of a bare
500: admin, the console, the demo site, the survey and attachment links, health and metrics. It
says "busy" under overload and "unavailable" with the database out of reach
(config.errors.database_refusal). Anything else is Django's own 500."""

import logging
import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import get_language
from django.views import defaults

from config.errors import database_refusal

logger = logging.getLogger(__name__)


def wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return request.path.startswith("/api/") or ("json" in accept and "html" not in accept)


def server_error(request: HttpRequest) -> HttpResponse:
    """Called by Django while it handles the exception, so the exception is sys.exc_info()'s."""
    refusal = database_refusal(sys.exc_info()[1])
    if refusal is None:
        return defaults.server_error(request)
    logger.warning(
        "%s: no database connection within the pool timeout (%s %s)", refusal.code, request.method, request.path
    )
    response: HttpResponse
    if wants_json(request):
        response = JsonResponse({"detail": refusal.message, "code": refusal.code}, status=503)
    else:
        # Rendered without the request's context, as Django's own 500 page is: its context
        # processors (the signed-in user) would reach for the database that is out of reach.
        context = {"language": get_language() or "en", "code": refusal.code}
        page = loader.get_template("busy.html").render(context)
        response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(refusal.retry_after)
    return response
