from django.urls import path
from rest_framework.routers import DefaultRouter

from tickets.api import ConversationViewSet, CustomerViewSet, DeskSearchView, MacroViewSet, TicketViewSet

# Accept paths with or without the trailing slash.
router = DefaultRouter(trailing_slash="/?")  # type: ignore[arg-type]
router.register("tickets", TicketViewSet, basename="ticket")
router.register("customers", CustomerViewSet, basename="customer")
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("macros", MacroViewSet, basename="macro")

urlpatterns = [path("search", DeskSearchView.as_view(), name="desk-search"), *router.urls]
