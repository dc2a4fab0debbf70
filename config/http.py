"""Plain HTTP in the web workers: Django's WSGI handler on a pool of threads, behind the ASGI
server that also serves the chat's websockets (config.asgi).

Django's own ASGI handler gives each request a thread of its own (asgiref's thread-sensitive
context: a one-thread executor made for the request and shut down after it) and crosses
between it and the event loop several times (request started, the sync middleware chain and
view, request finished). Served as WSGI from a standing pool of threads (a2wsgi, the adapter
uvicorn and Starlette point to), a request costs one hop there and back, and no thread is
made: a bare view went from 561-755 to 1,820-1,995 requests a second on two workers here
(bench/README.md, seventeenth round). Websockets stay on the event loop (Channels)."""

import io
from collections.abc import Iterable
from typing import cast

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi_typing import Environ, StartResponse
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application


class BufferedBodies:
    """Django's WSGI request reads CONTENT_LENGTH bytes of the body and no more, and a request
    sent in chunks (Transfer-Encoding: chunked) has no Content-Length: its body would read as
    empty. Such a body is read here first, up to the largest request the project takes (an
    attachment of CONCIERGE_ATTACHMENT_MAX_BYTES with its form around it); one over that is
    refused with 413 before the view runs."""

    def __init__(self, app: WSGIHandler) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if "CONTENT_LENGTH" not in environ and "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
            limit = chunked_body_limit()
            body = environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                start_response("413 Request Entity Too Large", [("Content-Type", "application/json")])
                return [b'{"detail": "The request body is too large.", "code": "too_large"}']
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return cast(Iterable[bytes], self.app(environ, start_response))  # type: ignore[arg-type]


def chunked_body_limit() -> int:
    """The largest chunked body read: the attachment limit or Django's in-memory limit on a
    request body, whichever is larger, and room for the form around it."""
    return max(settings.CONCIERGE_ATTACHMENT_MAX_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) + 64 * 1024


def http_application(threads: int) -> WSGIMiddleware:
    """The ASGI application for HTTP: Django's WSGI handler on ``threads`` threads."""
    return WSGIMiddleware(BufferedBodies(get_wsgi_application()), workers=threads)
