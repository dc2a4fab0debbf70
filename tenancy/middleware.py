"""A signed-in staff member's pages speak their language and show times in their organization's
time zone. One query per request (the profile and organization together), which also fills
the per-request cache that tenancy.services.staff_organization reads."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from tenancy.models import StaffProfile


class StaffPreferencesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return self.get_response(request)
        if not hasattr(user, "_staff_organization"):
            profile = StaffProfile.objects.select_related("organization").filter(user_id=user.pk).first()
            user._staff_organization = profile.organization if profile else None
            user._staff_language = profile.language if profile else ""
        language = getattr(user, "_staff_language", "")
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        organization = user._staff_organization
        if organization is not None:
            timezone.activate(organization.zone)
        try:
            response = self.get_response(request)
        finally:
            timezone.deactivate()
        if language:
            response.headers.setdefault("Content-Language", language)
        return response
