import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.version import __version__
from monitoring.metrics import metrics_render
from monitoring.services import readiness


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving."""
    return JsonResponse({"status": "ok", "version": __version__})


def readyz(request: HttpRequest) -> JsonResponse:
    """Dependencies reachable; 503 when a required one is down."""
    report = readiness()
    return JsonResponse(report, status=200 if report["ready"] else 503)


def bench_bare(request: HttpRequest) -> JsonResponse:
    """A bare Django view (no database, no DRF) behind the same middleware: the ceiling the
    API load benchmark compares our endpoints with. Routed only with CONCIERGE_BENCH_ENDPOINTS."""
    return JsonResponse({"ok": True})


def _metrics_allowed(request: HttpRequest) -> bool:
    """A matching bearer token, or a client address inside METRICS_ALLOWED_NETWORKS."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(client in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. Protected by a token or the scraper's network."""
    if not _metrics_allowed(request):
        return HttpResponse("Forbidden: send Authorization: Bearer <METRICS_TOKEN>.\n", status=403)
    body, content_type = metrics_render()
    return HttpResponse(body, content_type=content_type)
