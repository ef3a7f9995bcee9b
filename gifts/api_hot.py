"""``POST /api/v1/gifts/send/`` on the hot path: a plain Django view (issue #15, item 3).

``config.middleware.HotPathMiddleware`` calls ``gift_send_hot(request)`` for a POST to the
send path carrying ``Authorization: Token …``, before the session, CSRF, auth, OTP and
messages middlewares, URL resolving and DRF. It serves only the plain case and answers
exactly as ``gifts.api.GiftSendView`` would; for anything else it returns ``None`` and the
request goes on to that view (which also stays the OpenAPI source):

- PostgreSQL with ``GIFT_SEND_SQL`` (the one-round-trip gift); otherwise the DRF view;
- a JSON body (``application/json``, UTF-8, a JSON object) whose fields all pass
  ``GiftSendInput``'s rules; any doubt (a wrong type, a blank, a bad id, an unknown
  currency, an ``Accept`` other than JSON, a query string) goes to the DRF view, which
  answers with its own exact error;
- a well-formed Idempotency-Key (else the DRF view's 400);
- a token that ``CachedTokenAuthentication`` accepts (cached under its digest: revoking it
  deletes the entry, so a revoked token is refused at once); a refused token goes to the DRF
  view for its 401; the cached token is read in the same Redis call that counts the money
  throttle (``MoneyThrottle.token_entry``: one round trip for both);
- then, as the DRF view: the money throttle (429 ``throttled`` with ``Retry-After``), the gift
  with its Idempotency-Key record in one database call, refusals stored as the key's answer,
  a replay marked ``Idempotent-Replayed``, 409 for another body, 503 for a database outage.

Since nothing but the JSON body is read, the DRF view would answer the same request the same
way: tests/test_gift_send_hot.py sends the same requests through both and compares.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from accounts.auth import CachedTokenAuthentication
from config.api import (
    IDEMPOTENCY_KEY,
    exception_handler,
    idempotent_refusal,
    request_body_hash,
)
from config.errors import DomainError, IdempotencyConflict
from config.throttles import MoneyThrottle
from gifts.api import _with_creator_value, gift_answer
from gifts.services import QUANTITY_MAX, gift_send_uses_sql
from gifts.services.rules import MESSAGE_MAX

if TYPE_CHECKING:
    from accounts.models import User

_CONTEXT_ID = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
_JSON_ACCEPT = {"application/json", "application/*", "*/*"}
_RENDERER = JSONRenderer()
# What DRF adds to every answer of the send view (two renderers: JSON and the browsable API).
_DRF_HEADERS = {"Allow": "POST, OPTIONS", "Vary": "Accept"}


class _Delegate(Exception):
    """Not the plain case: the DRF view answers this request."""


def _text(raw: Any, *, max_length: int, trim: bool, blank: bool) -> str:
    if not isinstance(raw, str) or "\x00" in raw:
        raise _Delegate
    value: str = raw
    try:
        value.encode("utf-8")  # DRF refuses lone surrogates
    except UnicodeEncodeError:
        raise _Delegate from None
    if trim:
        value = value.strip()
    if (not value and not blank) or len(value) > max_length:
        raise _Delegate
    return value


def _whole(value: Any, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _Delegate
    return value


def _input(data: Any) -> dict[str, Any]:
    """``GiftSendInput``'s validated data, for input it would accept as it is (else _Delegate)."""
    if not isinstance(data, dict) or "creator" not in data or "gift" not in data:
        raise _Delegate
    values: dict[str, Any] = {
        "creator": _text(data["creator"], max_length=30, trim=True, blank=False),
        "gift": _text(data["gift"], max_length=40, trim=True, blank=False),
        "quantity": _whole(data.get("quantity", 1), minimum=1, maximum=QUANTITY_MAX),
    }
    for name in ("live_id", "video_id"):
        if name in data:
            value = _text(data[name], max_length=64, trim=False, blank=True)
            if not _CONTEXT_ID.fullmatch(value):
                raise _Delegate
            values[name] = value
    if values.get("live_id") and values.get("video_id"):
        raise _Delegate
    if "message" in data:
        values["message"] = _text(data["message"], max_length=MESSAGE_MAX, trim=False, blank=True)
    if "goal" in data:
        goal = data["goal"]
        values["goal"] = None if goal is None else _whole(goal, minimum=1, maximum=2**62)
    if "currency" in data:
        if not isinstance(data["currency"], str) or data["currency"] not in settings.CURRENCIES:
            raise _Delegate
        values["currency"] = data["currency"]
    return values


def _body(request: HttpRequest) -> Any:
    content_type = request.META.get("CONTENT_TYPE", "")
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        raise _Delegate
    charset = params.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", "charset=utf8"):
        raise _Delegate
    accept = request.META.get("HTTP_ACCEPT", "")
    if accept and any(part.split(";")[0].strip() not in _JSON_ACCEPT for part in accept.split(",")):
        raise _Delegate
    try:
        return json.loads(request.body.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise _Delegate from None


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity: DRF's strict JSON refuses them


def _respond(status: int, data: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(_RENDERER.render(data), status=status, content_type="application/json")
    for name, value in {**_DRF_HEADERS, **(headers or {})}.items():
        response[name] = value
    # What the middlewares this path skips would add (CommonMiddleware, XFrameOptions).
    response["Content-Length"] = str(len(response.content))
    response["X-Frame-Options"] = settings.X_FRAME_OPTIONS
    return response


def _from_drf(drf_response: Response) -> HttpResponse:
    headers = {name: value for name, value in drf_response.items() if name != "Content-Type"}
    return _respond(drf_response.status_code, drf_response.data, headers)


def gift_send_hot(request: HttpRequest) -> HttpResponse | None:
    """The send view's answer to a plain token-authenticated request, or None (not plain)."""
    if request.method != "POST" or request.META.get("QUERY_STRING") or not gift_send_uses_sql():
        return None
    try:
        data = _body(request)
        values = _input(data)
    except _Delegate:
        return None
    key = (request.META.get("HTTP_IDEMPOTENCY_KEY") or "").strip()  # request.headers: all parsed
    if not IDEMPOTENCY_KEY.match(key):
        return None
    throttle = MoneyThrottle()
    auth = CachedTokenAuthentication()
    auth.read = throttle.token_entry  # the token and the throttle: one Redis round trip
    try:
        try:
            authenticated = auth.authenticate(request)
        except exceptions.APIException:
            return None  # the DRF view's 401
        if authenticated is None:
            return None
        user, request.auth = authenticated  # type: ignore[attr-defined]  # as DRF sets them
        request.user = user
        return _send(request, user, data, values, key, throttle)
    except Exception as exc:  # what DRF's handle_exception does with it (a 503 for an outage)
        response = exception_handler(exc, {"request": request})
        if response is None:
            raise
        return _from_drf(response)


def _send(
    request: HttpRequest,
    user: User,
    data: Any,
    values: dict[str, Any],
    key: str,
    throttle: MoneyThrottle,
) -> HttpResponse:
    if not throttle.allow_request(request, None):
        raise exceptions.Throttled(throttle.wait())
    body_hash = request_body_hash(str(request.method), request.path, data)
    try:
        answer = gift_answer(
            values, sender=user, key=key, request_hash=body_hash, path=request.path
        )
    except IdempotencyConflict:
        raise
    except (DomainError, exceptions.APIException) as exc:
        return _from_drf(idempotent_refusal(request, key=key, request_hash=body_hash, exc=exc))
    body = _with_creator_value(answer.body, values.get("currency"))
    if answer.replayed:
        return _respond(answer.status, body, {"Idempotent-Replayed": "true"})
    return _respond(answer.status, body)
