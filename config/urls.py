from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from agents.views import console
from demo.orders import demo_order_status
from tenancy.views import staff_language
from tickets.views import attachment_download, csat_survey, demo_home

urlpatterns = [
    path("", demo_home, name="demo-home"),
    path("admin/", admin.site.urls),
    path("console/", console, name="console"),
    path("staff/language/", staff_language, name="staff-language"),
    path("demo/api/orders/<str:number>", demo_order_status, name="demo-order-status"),
    path("csat/<str:token>/", csat_survey, name="csat-survey"),
    path("attachments/<str:token>/", attachment_download, name="attachment"),
    path("api/v1/", include("agents.urls")),
    path("api/v1/", include("knowledge.urls")),
    path("api/v1/", include("tickets.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("monitoring.urls")),
]

# Out of database connections: 503 with Retry-After on every page, not a bare 500.
handler500 = "config.error_views.server_error"
