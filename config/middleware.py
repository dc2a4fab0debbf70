"""Middleware building blocks, and the security headers every page gets.

``AsyncCapableMiddleware`` and ``HybridMiddleware`` run natively under ASGI and WSGI alike (a
sync-only middleware would cost every ASGI request two thread hops); ``StaticFilesMiddleware``
is WhiteNoise made the same. The security headers: a Content Security Policy that
only lets the page load scripts, styles and connections from this site (the widget host page
included; no inline styles outside admin and the API docs), and a Permissions-Policy that
turns off browser features we never use. Django's SecurityMiddleware adds nosniff, the
referrer policy, COOP and (with DEBUG off) HSTS."""

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# drf-spectacular's Swagger page starts itself with one inline script.
INLINE_SCRIPT_PATHS = ("/api/docs/",)
INLINE_STYLE_PATHS = ("/admin/", "/api/docs/")


class AsyncCapableMiddleware:
    """A middleware that runs in the mode of the handler it wraps: coroutine-marked under ASGI
    (subclasses implement ``acall``), plain under WSGI (``__call__`` as Django's own).

    Django builds one chain per handler, and every middleware in it that can only run sync
    makes the chain hop threads: from there outwards it runs in a worker thread, and the
    asynchronous handler inside it is run back on the event loop, which runs the view in a
    thread again. py-spy on the API benchmark's workers showed three hops per request where one
    (the view's) is enough. Every middleware in ``MIDDLEWARE`` is async-capable for that reason."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.acall(request)
        return self.call(request)

    def call(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    async def acall(self, request: HttpRequest) -> HttpResponse:
        return await self.get_response(request)


class HybridMiddleware(AsyncCapableMiddleware):
    """Subclasses implement ``before`` (returns state), ``after`` and ``finish``."""

    def before(self, request: HttpRequest) -> Any:
        return None

    def after(self, request: HttpRequest, response: HttpResponse, state: Any) -> HttpResponse:
        return response

    def finish(self, state: Any) -> None:
        """Runs last, even when the view raised."""

    def call(self, request: HttpRequest) -> HttpResponse:
        state = self.before(request)
        try:
            return self.after(request, self.get_response(request), state)
        finally:
            self.finish(state)

    async def acall(self, request: HttpRequest) -> HttpResponse:
        state = self.before(request)
        try:
            return self.after(request, await self.get_response(request), state)
        finally:
            self.finish(state)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, async-capable: under ASGI a request for anything but a static file passes
    straight on, and a static file is looked up and opened in a thread (its response streams
    the file as WhiteNoise's does). WhiteNoise itself is sync-only, which cost every request
    two thread hops (see ``AsyncCapableMiddleware``)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(get_response, *args, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if self.autorefresh:  # development: look for the file on disk
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)


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
