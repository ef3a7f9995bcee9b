"""The API's shared plumbing: the error format, pagination, idempotency, throttles."""

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404, JsonResponse
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError, IdempotencyConflict, InvalidInput, database_error
from config.openapi import error_responses, status_text  # noqa: F401  (the views' import)

if TYPE_CHECKING:
    from accounts.models import User

log = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "validation_error",
}


def signed_in_user(request: Any) -> "User":
    """The signed-in user of a view that requires one, typed as the User (never anonymous)."""
    user = request.user
    if not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    return cast("User", user)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            text = _first_message(value)
            return text if key == "non_field_errors" else f"{key}: {text}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Turn every error into ``{"error": {"code", "message", "fields"}}`` with its status."""
    transient = database_error(exc)
    if transient is not None:
        log_database_error(exc, context.get("request"))
        exc = transient
    if isinstance(exc, DomainError):
        refusal = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
        if exc.retry_after is not None:
            refusal["Retry-After"] = str(exc.retry_after)
        return refusal
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = error_body(code, _first_message(detail) or "Invalid input.", fields)
    else:
        raw: Any = getattr(exc, "detail", str(exc))
        response.data = error_body(code, _first_message(raw))
    return response


def log_database_error(exc: BaseException, request=None) -> None:
    """One warning line per request answered 503 for a database failure (no traceback: an
    outage would flood the log with identical ones)."""
    cause = exc.__cause__ or exc
    first_line = (str(cause).strip().splitlines() or [""])[0][:200]
    log.warning(
        "database unavailable: %s %s: %s: %s",
        getattr(request, "method", "-"),
        getattr(request, "path", "-"),
        type(cause).__name__,
        first_line,
    )


def database_error_response(request, exc: BaseException):
    """The 503 for a transient database failure outside DRF's exception handler (middleware,
    the 500 handler): the JSON error under ``/api/``, a short static page elsewhere (it must
    not need the database: no context processors, no user). None when ``exc`` is not one."""
    from django.http import HttpResponse
    from django.template import loader

    error = database_error(exc)
    if error is None:
        return None
    log_database_error(exc, request)
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body(error.code, error.message), status=error.status)
    else:
        html = loader.get_template("503.html").render()
        response = HttpResponse(html, status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response


def api_not_found(request, exception=None):
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def api_server_error(request):
    return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)


def _query_int(request, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    """A whole-number query parameter, checked as the schema states it (400 otherwise)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    bound = f" from {minimum} to {maximum}" if maximum is not None else f" of {minimum} or more"
    if not raw.isdigit() or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
        raise exceptions.ValidationError({name: [f"A whole number{bound}."]})
    return int(raw)


def _page_size_parameter(maximum: int) -> dict:
    return {
        "name": "page_size",
        "required": False,
        "in": "query",
        "description": f"Results per page (1 to {maximum}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


class Pagination(PageNumberPagination):
    """Pages by number. Past the last page: an empty page (``next`` null)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        number = _query_int(request, self.page_query_param, minimum=1) or 1
        size = _query_int(request, self.page_size_query_param, minimum=1, maximum=200)
        self.request = request
        paginator = self.django_paginator_class(queryset, size or self.page_size)
        if number > paginator.num_pages:
            self.page = None
            return []
        self.page = paginator.page(number)
        return list(self.page)

    def get_next_link(self):
        return super().get_next_link() if self.page is not None else None

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "The page number (from 1).",
                "schema": {"type": "integer", "minimum": 1},
            },
            _page_size_parameter(self.max_page_size),
        ]

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
            },
        }


class NewestFirstCursorPagination(CursorPagination):
    """Stable pagination for append-only, ever-growing lists (ledger entries)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"

    def paginate_queryset(self, queryset, request, view=None):
        _query_int(request, self.page_size_query_param, minimum=1, maximum=self.max_page_size)
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError({self.cursor_query_param: [str(exc.detail)]}) from exc

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Where the page starts: the `next` link of the page before.",
                "schema": {"type": "string"},
            },
            _page_size_parameter(self.max_page_size),
        ]

    def get_paginated_response_schema(self, schema):
        return Pagination().get_paginated_response_schema(schema)


# --- Input: JSON types as the schema states them ----------------------------------------------


def _json_type_error(field: serializers.Field, value: Any) -> str | None:
    """What is wrong with ``value``'s JSON type for ``field`` (None when it fits).

    DRF coerces (``"5"`` or ``5.0`` for an integer, ``1`` for text, ``"true"`` for a
    boolean); the schema promises clients the types, so the API holds them to it.
    """
    if value is None:
        return None  # allow_null decides
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "Must be a whole number."
    if isinstance(field, serializers.FloatField):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "Must be a number."
    if isinstance(field, serializers.ChoiceField):
        kinds = {type(key) for key in field.choices}
        return None if type(value) in kinds else "Not a valid choice."
    if isinstance(field, serializers.ListField | serializers.ListSerializer):
        if not isinstance(value, list):
            return "Must be a list."
        child = field.child
        if child is None:
            return None
        return next((e for e in (_json_type_error(child, v) for v in value) if e), None)
    if isinstance(field, serializers.DictField | serializers.JSONField):
        return None
    if isinstance(field, serializers.Serializer):
        return None if isinstance(value, dict) else "Must be an object."
    if isinstance(field, serializers.CharField | serializers.DateField | serializers.DateTimeField):
        return None if isinstance(value, str) else "Must be a string."
    return None


class StrictInput(serializers.Serializer):
    """A JSON request body: each field must already have the JSON type the schema gives it."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors: dict[str, list[str]] = {}
            for name, field in self.fields.items():
                if field.read_only:
                    continue  # what DRF's _writable_fields leaves out
                problem = _json_type_error(field, data.get(name))
                if problem:
                    errors[name] = [problem]
            if errors:
                raise exceptions.ValidationError(errors)
        return super().to_internal_value(data)


# --- Idempotency ----------------------------------------------------------------------------

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
IDEMPOTENCY_HEADER = OpenApiParameter(
    name="Idempotency-Key",
    type={"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY.pattern},
    location=OpenApiParameter.HEADER,
    required=True,
    description=(
        "A unique key per money-moving request (a UUID; up to 255 visible ASCII characters, "
        "no spaces). A retry with the same key and body "
        "returns the first response; the same key with another body is 409."
    ),
)


def request_body_hash(method: str, path: str, data: Any) -> str:
    """What a replay must match: method, path and the parsed body (the gift's hot path and
    DRF's views hash alike, so a retry may arrive by either)."""
    try:
        body = json.dumps(data, sort_keys=True, default=str)
    except (TypeError, ValueError):
        body = repr(data)
    return hashlib.sha256(f"{method} {path}\n{body}".encode()).hexdigest()


def _request_hash(request) -> str:
    return request_body_hash(request.method, request.path, request.data)


def idempotency_key(request) -> str:
    """The request's Idempotency-Key header, checked (400 when missing or too long)."""
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if not key:
        raise InvalidInput(
            "The Idempotency-Key header is required for this request.",
            fields={"Idempotency-Key": ["This header is required."]},
        )
    if len(key) > 255:
        raise InvalidInput(
            "The Idempotency-Key header is too long (255 characters at most).",
            fields={"Idempotency-Key": ["Ensure this value has at most 255 characters."]},
        )
    if not IDEMPOTENCY_KEY.match(key):
        raise InvalidInput(
            "The Idempotency-Key header takes visible ASCII characters only (a UUID).",
            fields={"Idempotency-Key": ["Use a UUID: visible ASCII, no spaces."]},
        )
    return key


def idempotency_request_hash(request) -> str:
    """What a replay must match: method, path and body."""
    return _request_hash(request)


def replayed(status: int, body: Any) -> Response:
    response = Response(body, status=status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent_refusal(request, *, key: str, request_hash: str, exc: Exception) -> Response:
    """Store a refused request's answer under its key (as ``idempotent`` does) and send it.

    For handlers that write their success answer themselves (the one-round-trip gift): only a
    refusal, which wrote nothing, comes here. If a copy of the request answered first, its
    answer is replayed (or 409 for another body).
    """
    from accounts.models import IdempotencyRecord

    response = exception_handler(exc, {"request": request})
    if response is None:  # not an error the API renders: a 500, stored nowhere
        raise exc
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(
                user=request.user,
                key=key,
                request_hash=request_hash,
                path=request.path[:255],
                response_status=response.status_code,
                response_body=response.data,
            )
    except IntegrityError:
        existing = IdempotencyRecord.objects.get(user=request.user, key=key)
        if existing.request_hash != request_hash:
            raise IdempotencyConflict() from None
        return replayed(existing.response_status, existing.response_body)
    return response


def idempotent(request, handler: Callable[[], Response]) -> Response:
    """Run ``handler`` at most once per (user, Idempotency-Key).

    The key row is inserted in the same database transaction as the handler's writes, so a
    crash leaves neither; a concurrent duplicate blocks on the unique index until the first
    commits, then replays its answer. Client errors (4xx) are stored and replayed too, like
    Stripe does; unexpected errors roll everything back so the client may retry.
    """
    from accounts.models import IdempotencyRecord

    key = idempotency_key(request)
    request_hash = _request_hash(request)
    try:
        with transaction.atomic():
            record = IdempotencyRecord(
                user=request.user,
                key=key,
                request_hash=request_hash,
                path=request.path[:255],
                response_status=0,
                response_body={},
            )
            with transaction.atomic():
                record.save(force_insert=True)
            response: Response | None
            try:
                with transaction.atomic():
                    response = handler()
            except (DomainError, exceptions.APIException) as exc:
                response = exception_handler(exc, {"request": request})
                if response is None:
                    raise
            record.response_status = response.status_code
            record.response_body = response.data
            record.save(update_fields=["response_status", "response_body"])
            return response
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
        if existing is None:
            raise
    if existing.request_hash != request_hash:
        raise IdempotencyConflict()
    return replayed(existing.response_status, existing.response_body)


def idempotent_phased(request, handler: Callable[[str, str], Response]) -> Response:
    """``idempotent`` for a handler that commits in phases itself (a recharge: its first
    transaction writes the key's record, unfinished, with the recharge; Stripe is called
    outside any transaction; see ``wallets.services.purchase``).

    A finished key is replayed (409 for another body). An unfinished one (a copy in flight, or
    a crash between the phases) goes to ``handler(key, request_hash)`` again, which continues
    from its recovery point. The answer is stored when the handler returns or refuses (4xx);
    a 5xx domain error (the payment provider unreachable) is sent but not stored, so the
    retry continues instead of replaying it.
    """
    from accounts.models import IdempotencyRecord

    key = idempotency_key(request)
    request_hash = _request_hash(request)
    existing = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
    if existing is not None:
        if existing.request_hash != request_hash:
            raise IdempotencyConflict()
        if existing.response_status:
            return replayed(existing.response_status, existing.response_body)
    response: Response | None
    try:
        response = handler(key, request_hash)
    except (DomainError, exceptions.APIException) as exc:
        if isinstance(exc, DomainError) and exc.status >= 500:
            raise
        response = exception_handler(exc, {"request": request})
        if response is None:  # not an error the API renders: a 500, stored nowhere
            raise
    stored = IdempotencyRecord.objects.filter(
        user=request.user, key=key, request_hash=request_hash, response_status=0
    ).update(response_status=response.status_code, response_body=response.data)
    if not stored:
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(
                    user=request.user,
                    key=key,
                    request_hash=request_hash,
                    path=request.path[:255],
                    response_status=response.status_code,
                    response_body=response.data,
                )
            stored = 1
        except IntegrityError:
            pass
    if stored:
        return response
    # A copy of this request answered first: every copy sends that answer.
    first = IdempotencyRecord.objects.get(user=request.user, key=key)
    if first.request_hash != request_hash:
        raise IdempotencyConflict()
    return replayed(first.response_status, first.response_body)


# Throttles live in config/throttles.py: DRF's settings import them while
# rest_framework.views is still loading, so they cannot sit in this module.
