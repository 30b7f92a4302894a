"""Security headers, origin checks, and the one mapping of errors to responses."""

from __future__ import annotations

import json
import logging
import traceback

from aiohttp import web
from aiohttp.typedefs import Handler

from server.core.errors import DomainError, ErrorCode
from server.db.errors import as_domain_error
from server.web.keys import SETTINGS

log = logging.getLogger("parley.http")

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # blob: for images decrypted in the browser (the evidence room's inline view).
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "media-src 'self' blob:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Invitation tokens are in URLs: never leak them through the Referer header.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
}
# Two years, the HSTS preload list's minimum; only sent when Parley is reached over https.
HSTS = "max-age=63072000; includeSubDomains"
# Instead of aiohttp's default, which names the Python and aiohttp versions.
SERVER_NAME = "Parley"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def error_response(request: web.Request, err: DomainError) -> web.Response:
    response = _error_body(request, err)
    if (retry := err.retry_after_header) is not None:
        response.headers["Retry-After"] = retry
    return response


def _error_body(request: web.Request, err: DomainError) -> web.Response:
    if wants_json(request):
        return web.json_response(err.as_payload(), status=err.status)
    from server.web.templating import render

    if err.code == ErrorCode.UNAUTHENTICATED and request.method == "GET":
        raise web.HTTPSeeOther(f"/login?next={request.path_qs}" if request.path != "/" else "/login")
    return render(request, "error.html", {"code": str(err.code), "message": err.message}, status=err.status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as err:
        return error_response(request, err)
    except web.HTTPException as exc:
        if exc.status >= 400 and wants_json(request):
            code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.INVALID, 413: ErrorCode.TOO_LARGE}.get(
                exc.status, ErrorCode.INVALID
            )
            return web.json_response(
                {"error": {"code": str(code), "message": exc.reason}}, status=exc.status
            )
        raise
    except json.JSONDecodeError:
        return error_response(request, DomainError(ErrorCode.INVALID, "body: not valid JSON."))
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        # Safety net behind server/web/bodies.py: a body that could not be decoded or
        # parsed is the client's fault (400), wherever it was read.
        if not isinstance(exc, (UnicodeDecodeError, RecursionError)) and not _raised_reading_body(exc):
            log.exception("unhandled error on %s %s", request.method, request.path)
            return error_response(
                request, DomainError(ErrorCode.INTERNAL, "Something went wrong; nothing was changed.")
            )
        log.warning("refused an unreadable body on %s %s: %r", request.method, request.path, exc)
        return error_response(request, DomainError(ErrorCode.INVALID, "body: could not be read."))
    except Exception as exc:
        mapped = as_domain_error(exc)
        if mapped is not None:
            return error_response(request, mapped)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            request, DomainError(ErrorCode.INTERNAL, "Something went wrong; nothing was changed.")
        )


# Where body decoding and parsing happen: a ValueError raised there means bad input.
_BODY_READERS = (
    "aiohttp/web_request.py", "aiohttp/multipart.py", "aiohttp/formdata.py",
    "json/decoder.py", "json/__init__.py", "urllib/parse.py", "server/web/bodies.py",
)


def _raised_reading_body(exc: BaseException) -> bool:
    frames = traceback.walk_tb(exc.__traceback__)
    return any(frame.f_code.co_filename.replace("\\", "/").endswith(_BODY_READERS) for frame, _ in frames)


@web.middleware
async def origin_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """State-changing requests must come from an allowed origin (CSRF defence in depth)."""
    if request.method in UNSAFE and not request.path.startswith("/socket.io/"):
        if not _from_allowed_origin(request):
            raise DomainError(ErrorCode.FORBIDDEN, "This request came from an origin that is not allowed.")
    return await handler(request)


def _from_allowed_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin in request.app[SETTINGS].allowed_origins:
        return True
    # With "Referrer-Policy: no-referrer" browsers send "Origin: null" on form posts,
    # even same-origin ones; Sec-Fetch-Site, which no page can set, still tells.
    return origin == "null" and request.headers.get("Sec-Fetch-Site") == "same-origin"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` signal, not a middleware: it also reaches responses no
    handler returned (redirects and errors raised as exceptions, the router's 404 and
    405, 413 for a body too large)."""
    headers = response.headers
    headers["Server"] = SERVER_NAME
    if request.app[SETTINGS].base_url.startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # The Socket.IO transport is fetched by our own script, never shown as a page: the
    # page policies (CSP, framing, caching) would only get in its way.
    if request.path.startswith("/socket.io/"):
        return
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if (
        response.content_type == "text/html"
        or request.path.startswith("/api/")
        or response.status >= 300
    ):
        headers.setdefault("Cache-Control", "no-store")
