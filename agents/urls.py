from django.urls import path

from agents.api import WidgetAttachmentView, WidgetConfigView, WidgetSessionView
from agents.email.providers import email_provider_inbound
from agents.email.views import email_inbound
from agents.messaging.views import messaging_webhook

urlpatterns = [
    path("widget/sessions", WidgetSessionView.as_view(), name="widget-sessions"),
    path("widget/config", WidgetConfigView.as_view(), name="widget-config"),
    path("widget/attachments", WidgetAttachmentView.as_view(), name="widget-attachments"),
    path("email/inbound/<slug:slug>", email_inbound, name="email-inbound"),
    path("email/inbound/<slug:slug>/<slug:provider>", email_provider_inbound, name="email-provider-inbound"),
    path("messaging/<str:key>", messaging_webhook, name="messaging-webhook"),
]
