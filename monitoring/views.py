from django.http import HttpRequest, JsonResponse

from monitoring.services import readiness


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Dependencies reachable; 503 when a required one is down."""
    report = readiness()
    return JsonResponse(report, status=200 if report["ready"] else 503)
