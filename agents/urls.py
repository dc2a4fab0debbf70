from django.urls import path

from agents.api import WidgetSessionView

urlpatterns = [path("widget/sessions", WidgetSessionView.as_view(), name="widget-sessions")]
