"""Middleware building blocks, and the security headers every page gets.

``HybridMiddleware`` runs in the mode of the chain around it, sync or async (under ASGI the
chain is kept sync, in one thread with the view: see the comment on ``MIDDLEWARE``).

The security headers: a Content Security Policy that only lets the page load scripts, styles
and connections from this site (the widget host page included; no inline styles outside admin
and the API docs), and a Permissions-Policy that turns off browser features we never use.
Django's SecurityMiddleware adds nosniff, the referrer policy, COOP and (with DEBUG off) HSTS."""

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# drf-spectacular's Swagger page starts itself with one inline script.
INLINE_SCRIPT_PATHS = ("/api/docs/",)
INLINE_STYLE_PATHS = ("/admin/", "/api/docs/")


class HybridMiddleware:
    """Subclasses implement ``before`` (returns state), ``after`` and ``finish``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def before(self, request: HttpRequest) -> Any:
        return None

    def after(self, request: HttpRequest, response: HttpResponse, state: Any) -> HttpResponse:
        return response

    def finish(self, state: Any) -> None:
        """Runs last, even when the view raised."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        state = self.before(request)
        try:
            return self.after(request, self.get_response(request), state)
        finally:
            self.finish(state)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        state = self.before(request)
        try:
            return self.after(request, await self.get_response(request), state)
        finally:
            self.finish(state)


def content_security_policy(request: HttpRequest) -> str:
    host = request.get_host()
    inline = " 'unsafe-inline'" if request.path.startswith(INLINE_SCRIPT_PATHS) else ""
    # Django's admin writes a few style attributes; every other page (the widget included,
    # whose styles are a static stylesheet) does without inline styles.
    style_inline = " 'unsafe-inline'" if request.path.startswith(INLINE_STYLE_PATHS) else ""
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self'{inline}",
            f"style-src 'self'{style_inline}",
            "img-src 'self' data:",
            "font-src 'self' data:",
            f"connect-src 'self' ws://{host} wss://{host}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeadersMiddleware(HybridMiddleware):
    def after(self, request: HttpRequest, response: HttpResponse, state: Any) -> HttpResponse:
        if "text/html" in response.get("Content-Type", ""):
            response.setdefault("Content-Security-Policy", content_security_policy(request))
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
