"""Per-request observation: a request id on every log line and response, HTTP metrics by
route, one access log line; and sampled or slow-request profiling."""

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from config.middleware import HybridMiddleware
from monitoring import context
from monitoring.metrics import HTTP_LATENCY, HTTP_REQUESTS

access_log = logging.getLogger("concierge.access")
QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/static/")


_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def _route(request: HttpRequest) -> str:
    """The URL pattern that matched, e.g. ``api/v1/tickets/<pk>/``: one label per route,
    however many ids are requested (DRF's regex routes are shown the same way)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    route = _NAMED_GROUP.sub(r"<\1>", str(match.route or match.view_name or "unmatched"))
    return route.replace("^", "").replace("$", "")[:120]


class RequestObservationMiddleware(HybridMiddleware):
    def before(self, request: HttpRequest) -> Any:
        token = context.request_id.set(context.request_id_new(request.headers.get("X-Request-ID", "")))
        return token, time.perf_counter()

    def after(self, request: HttpRequest, response: HttpResponse, state: Any) -> HttpResponse:
        self._observe(request, response, state[1])
        return response

    def finish(self, state: Any) -> None:
        context.request_id.reset(state[0])

    def _observe(self, request: HttpRequest, response: HttpResponse, started: float) -> None:
        elapsed = time.perf_counter() - started
        route, method = _route(request), request.method or "GET"
        HTTP_REQUESTS.labels(view=route, method=method, status=str(response.status_code)).inc()
        HTTP_LATENCY.labels(view=route, method=method).observe(elapsed)
        response["X-Request-ID"] = context.request_id.get()
        level = logging.DEBUG if request.path.startswith(QUIET_PATHS) else logging.INFO
        access_log.log(
            level,
            "%s %s %s %.1fms",
            method,
            request.path,
            response.status_code,
            elapsed * 1000,
            extra={"status": response.status_code, "duration_ms": round(elapsed * 1000, 2), "view": route},
        )


class ProfilingMiddleware:
    """Sync on purpose and innermost: Django then runs the view in this same thread, which is
    the thread pyinstrument samples. Off (not even loaded) when sampling and the slow
    threshold are both zero."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if settings.CONCIERGE_PROFILE_SAMPLE_RATE <= 0 and settings.CONCIERGE_PROFILE_SLOW_MS <= 0:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from pyinstrument import Profiler

        from monitoring.profiling import profiling_wanted, request_profile_store, sql_meter_start, sql_meter_stop

        wanted, sampled = profiling_wanted()
        if not wanted or request.path.startswith(QUIET_PATHS):
            return self.get_response(request)
        profiler = Profiler(interval=0.001, async_mode="disabled")
        meter, token = sql_meter_start()
        started = time.perf_counter()
        profiler.start()
        try:
            response = self.get_response(request)
        finally:
            profiler.stop()
            sql_meter_stop(token)
        duration_ms = (time.perf_counter() - started) * 1000
        try:
            request_profile_store(
                profiler=profiler,
                method=request.method or "GET",
                path=request.path,
                view=_route(request),
                status=response.status_code,
                duration_ms=duration_ms,
                meter=meter,
                sampled=sampled,
                request_id=context.request_id.get(),
            )
        except Exception:  # a profile is never worth a failed request
            logging.getLogger(__name__).warning("could not store a request profile", exc_info=True)
        return response
