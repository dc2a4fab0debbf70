"""The project's URLs with three more: pages that run out of database connections (a real
psycopg pool, exhausted by the test) and one that fails otherwise. The 500 handler is the one
config/urls.py declares."""

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import handler500
from config.urls import urlpatterns as project_urlpatterns

__all__ = ["handler500", "urlpatterns"]

POOL: list = []  # the exhausted pool, set by the test


def busy(request: HttpRequest) -> HttpResponse:
    with connection.wrap_database_errors:
        POOL[0].getconn()
    return HttpResponse("never reached")


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a fault, not overload")


urlpatterns = [
    path("test-busy/", busy),
    path("api/test-busy/", busy),
    path("test-broken/", broken),
    *project_urlpatterns,
]
