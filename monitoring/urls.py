from django.conf import settings
from django.urls import path

from monitoring.views import bench_bare, healthz, metrics, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]
if settings.CONCIERGE_BENCH_ENDPOINTS:
    from monitoring import bench_views

    urlpatterns += [
        path("bench/bare", bench_bare, name="bench-bare"),
        path("bench/min/tickets/", bench_views.bench_ticket_list),
        path("bench/min/tickets/<int:pk>/", bench_views.bench_ticket),
        path("bench/min/kb/search", bench_views.bench_kb_search),
    ]
