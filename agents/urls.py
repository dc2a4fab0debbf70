from django.urls import path

from agents.api import WidgetAttachmentView, WidgetConfigView, WidgetSessionView

urlpatterns = [
    path("widget/sessions", WidgetSessionView.as_view(), name="widget-sessions"),
    path("widget/config", WidgetConfigView.as_view(), name="widget-config"),
    path("widget/attachments", WidgetAttachmentView.as_view(), name="widget-attachments"),
]
