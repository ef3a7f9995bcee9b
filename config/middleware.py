"""Request ids, structured access logs and security headers."""

import logging
import re
import time
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError

from accounts.client_address import client_address

access_log = logging.getLogger("applause.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


class RequestIdMiddleware:
    """Tag each request with an id (the caller's ``X-Request-ID`` when well-formed) and log
    one line per request: method, path (never the query string or body: no secrets, no card
    data), status, duration, user id and client address (``TRUSTED_PROXY_COUNT``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")  # request.headers parses them all
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        started = time.monotonic()
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        if not access_log.isEnabledFor(logging.INFO):
            return response  # LOG_LEVEL above INFO: no line, so nothing to work out for it
        access_log.info(
            "request_id=%s method=%s path=%s status=%s duration_ms=%.1f user=%s client=%s",
            request.request_id,
            request.method,
            request.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
            _user_id(request),
            client_address(request) or "-",
        )
        return response


def _user_id(request) -> object:
    user = getattr(request, "user", None)
    try:
        return user.pk if user is not None and user.is_authenticated else "-"
    except DatabaseError:  # the database is away (the response says so): log the line anyway
        return "-"


class ContentSecurityPolicyMiddleware:
    """A strict CSP: our own scripts and styles, plus Stripe.js where it is configured."""

    EXEMPT_PREFIXES = ("/api/docs/",)

    def __init__(self, get_response):
        self.get_response = get_response
        stripe_origins = " ".join(
            sorted(
                {
                    o
                    for o in (_origin(settings.STRIPE_JS_URL), _origin(settings.STRIPE_API_BASE))
                    if o
                }
            )
        )
        self.policy = "; ".join(
            [
                "default-src 'self'",
                f"script-src 'self' {stripe_origins}",
                # Stripe Elements injects styles into its own iframes and the host page.
                f"style-src 'self' 'unsafe-inline' {stripe_origins}",
                "img-src 'self' data: blob:",
                "font-src 'self' data:",
                f"connect-src 'self' {stripe_origins}",
                f"frame-src 'self' {stripe_origins}",
                "object-src 'none'",
                "base-uri 'self'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            ]
        )

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(self.EXEMPT_PREFIXES):
            response.setdefault("Content-Security-Policy", self.policy)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class ApiJsonNotFoundMiddleware:
    """An ``Http404`` raised by a plain (non-DRF) view under ``/api/`` answers the documented
    JSON error in every mode; under ``DEBUG`` Django would render its HTML debug page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from django.http import Http404

        from config.api import api_not_found

        if isinstance(exception, Http404) and request.path.startswith("/api/"):
            return api_not_found(request, exception)
        return None


class DatabaseUnavailableMiddleware:
    """A view that fails because PostgreSQL is down, restarting or dropped its connection
    answers 503 with ``Retry-After`` (JSON under ``/api/``, a short page elsewhere), not a 500.
    Failures outside views (another middleware) reach the same answer through
    ``config.views.server_error``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from config.api import database_error_response

        return database_error_response(request, exception)


class HotPathMiddleware:
    """Serve the API's hot paths (``API_HOT_PATHS``: path → view) before the middlewares a
    token-authenticated API request does not need (sessions, CSRF, auth, OTP, messages) and
    before URL resolving and DRF (issue #15). Only a POST with ``Authorization: Token …`` is
    offered to the view; the view returns None for anything it does not serve plainly, and the
    request takes the ordinary way. ``API_HOT_PATH=0`` turns it off."""

    def __init__(self, get_response):
        from django.core.exceptions import MiddlewareNotUsed
        from django.utils.module_loading import import_string

        if not settings.API_HOT_PATH:
            raise MiddlewareNotUsed
        self.get_response = get_response
        self.views = {path: import_string(view) for path, view in settings.API_HOT_PATHS.items()}

    def __call__(self, request):
        view = self.views.get(request.path_info)
        if (
            view is not None
            and request.method == "POST"
            and request.META.get("HTTP_AUTHORIZATION", "")[:6].lower() == "token "
        ):
            response = view(request)
            if response is not None:
                return response
        return self.get_response(request)
