from django.conf import settings
from django.urls import path

from monitoring.views import bench_bare, healthz, metrics, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]
if settings.CONCIERGE_BENCH_ENDPOINTS:
    urlpatterns.append(path("bench/bare", bench_bare, name="bench-bare"))
