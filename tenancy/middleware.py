"""A signed-in staff member's pages speak their language and show times in their organization's
time zone. It reads the profile once (tenancy.services.staff_profile), which every later read of
the staff member's organization in the request shares.

Under ASGI it runs on the event loop and a request without a session (the API's token calls,
the widget, health checks) passes straight on; a session's user and profile are read in a
thread, on the request's own user object, which the view then shares."""

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from config.middleware import AsyncCapableMiddleware
from tenancy.services import staff_organization, staff_profile


def _preferences(request: HttpRequest) -> tuple[str, Any]:
    """(language, time zone) of the request's staff member; ("", None) for anyone else."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return "", None
    profile = staff_profile(user)
    organization = staff_organization(user)
    return (profile.language if profile else ""), (organization.zone if organization is not None else None)


class StaffPreferencesMiddleware(AsyncCapableMiddleware):
    @staticmethod
    def _activate(request: HttpRequest, language: str, zone: Any) -> None:
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        if zone is not None:
            timezone.activate(zone)

    @staticmethod
    def _finish(response: HttpResponse, language: str) -> HttpResponse:
        if language:
            response.headers.setdefault("Content-Language", language)
        return response

    def call(self, request: HttpRequest) -> HttpResponse:
        language, zone = _preferences(request)
        self._activate(request, language, zone)
        try:
            response = self.get_response(request)
        finally:
            timezone.deactivate()
        return self._finish(response, language)

    async def acall(self, request: HttpRequest) -> HttpResponse:
        language, zone = "", None
        if request.COOKIES.get(settings.SESSION_COOKIE_NAME):  # no session, no signed-in staff
            language, zone = await sync_to_async(_preferences)(request)
        self._activate(request, language, zone)
        try:
            response = await self.get_response(request)
        finally:
            timezone.deactivate()
        return self._finish(response, language)
