"""App webhooks: endpoints, events stored once, signed deliveries with retries (Stripe-like).

``webhook_event_emit`` is what other apps call, inside the transaction of the event (like
``email_enqueue``): nothing is stored when the person has no endpoint that wants it. After the
commit a task delivers each endpoint's pending events oldest first, one at a time (the
endpoint row is locked while a delivery is on the wire, so two workers never deliver to one
endpoint at once and events arrive in order), retrying with backoff for
``WEBHOOK_RETRY_HOURS``; an endpoint failing that long is disabled and its owner emailed.

Outgoing requests go only to public addresses in production (checked after DNS resolution, and
the connection is made to the address that was checked, so a DNS answer cannot change between
the check and the request), time out after ``WEBHOOK_TIMEOUT`` and never follow redirects.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError, InvalidInput, NotFound
from notifications.models import (
    DeliveryStatus,
    EmailCategory,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

if TYPE_CHECKING:
    from accounts.models import User


log = logging.getLogger(__name__)

EVENT_TYPES = [
    "gift.received",
    "goal.met",
    "goal.missed",
    "membership.started",
    "membership.renewed",
    "membership.grace",
    "membership.lapsed",
    "membership.cancelled",
    "payout.held",
    "payout.sent",
    "payout.paid",
    "payout.failed",
]
PREFIXES = sorted({t.split(".")[0] for t in EVENT_TYPES})
SIGNATURE_HEADER = "Applause-Signature"
USER_AGENT = "Applause-Webhooks/1.0"


class UnsafeUrl(DomainError):
    code = "webhook_url_refused"
    status = 400
    default_message = "That URL cannot receive webhooks."


class NotACreator(DomainError):
    code = "not_a_creator"
    status = 403
    default_message = "Only creators have webhook endpoints. Become a creator first."


class TooManyEndpoints(DomainError):
    code = "too_many_endpoints"
    status = 409
    default_message = "You have the most webhook endpoints allowed; delete one first."


# --- Signing --------------------------------------------------------------------------------


def signature_header(*, secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def signature_verify(*, secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """The receiver's check (the docs show the same in 10 lines): HMAC over "t.body", and a
    timestamp no older than ``tolerance`` seconds (replays)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = signature_header(secret=secret, body=body, timestamp=timestamp).split("v1=")[1]
    fresh = abs(time.time() - timestamp) <= tolerance
    return fresh and hmac.compare_digest(expected, parts.get("v1", ""))


# --- Where a request may go -----------------------------------------------------------------


@dataclass
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the resolved IP we connect to


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def url_target(url: str) -> Target:
    """Parse and resolve ``url``; refuse what production must never reach."""
    parts = urlsplit(url)
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeUrl("The URL must be an absolute https:// URL.", fields={"url": ["Use https."]})
    if parts.scheme == "http" and not allow_private:
        raise UnsafeUrl("Webhook URLs must use https.", fields={"url": ["Use https."]})
    if parts.username or parts.password:
        raise UnsafeUrl("Put no credentials in the URL.", fields={"url": ["No user:password@."]})
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        raise UnsafeUrl("That host name does not resolve.", fields={"url": ["Unknown host."]})
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private and not all(_address_allowed(a) for a in addresses):
        raise UnsafeUrl(
            "That URL points to a private, loopback or link-local address.",
            fields={"url": ["Use a public address."]},
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _post(url: str, *, body: bytes, headers: dict[str, str]) -> int:
    """POST once; returns the status code (redirects are answers, never followed)."""
    target = url_target(url)
    timeout = settings.WEBHOOK_TIMEOUT
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = connection_class(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(65536)
        return response.status
    finally:
        conn.close()


# --- Endpoints ------------------------------------------------------------------------------


def _events_clean(events: Any) -> list[str]:
    if not isinstance(events, list) or not events:
        raise InvalidInput(
            "events must be a non-empty list.", fields={"events": ["Choose at least one."]}
        )
    cleaned: list[str] = []
    for name in events:
        valid = isinstance(name, str) and (
            name in EVENT_TYPES or (name.endswith(".*") and name[:-2] in PREFIXES)
        )
        if not valid:
            raise InvalidInput(
                f"Unknown event {name!r}.",
                fields={"events": [f"Choose from {', '.join(EVENT_TYPES)} or prefix.*"]},
            )
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


def _has_endpoints_key(user_id: int) -> str:
    return f"webhooks:has:{user_id}"


@transaction.atomic
def webhook_endpoint_create(*, user: User, url: str, events: Any) -> WebhookEndpoint:
    if not getattr(user, "is_creator", False):
        raise NotACreator()
    cleaned = _events_clean(events)
    url_target(url)
    if WebhookEndpoint.objects.filter(owner=user).count() >= settings.WEBHOOK_ENDPOINTS_MAX:
        raise TooManyEndpoints()
    endpoint = WebhookEndpoint.objects.create(
        owner=user, url=url, events=cleaned, secret="whsec_" + secrets.token_urlsafe(32)
    )
    transaction.on_commit(lambda: cache.delete(_has_endpoints_key(user.pk)))
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, user: User, endpoint_id: int) -> None:
    deleted, _ = WebhookEndpoint.objects.filter(pk=endpoint_id, owner=user).delete()
    if not deleted:
        raise NotFound()
    transaction.on_commit(lambda: cache.delete(_has_endpoints_key(user.pk)))


def webhook_endpoint_get(*, user: User, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, owner=user).first()
    if endpoint is None:
        raise NotFound()
    return endpoint


# --- Events ---------------------------------------------------------------------------------


def _wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    prefix = event_type.split(".")[0]
    return event_type in endpoint.events or f"{prefix}.*" in endpoint.events


def webhook_owners_subscribed(*, user_ids: list[int], type: str) -> set[int]:
    """Which of ``user_ids`` have an enabled endpoint that wants ``type`` (one query): a bulk
    job emits events only for them."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    if not user_ids:
        return set()
    endpoints = WebhookEndpoint.objects.filter(owner_id__in=set(user_ids), enabled=True)
    return {e.owner_id for e in endpoints if _wants(e, type)}


def webhook_event_emit(*, user_id: int, type: str, key: str, data: dict) -> WebhookEvent | None:
    """Store ``type`` for ``user_id``'s apps, once per ``key``, in the caller's transaction.

    Costs one cache read when the person has no endpoints (the gift hot path calls this).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    has = cache.get(_has_endpoints_key(user_id))
    if has is None:
        has = WebhookEndpoint.objects.filter(owner_id=user_id, enabled=True).exists()
        cache.set(_has_endpoints_key(user_id), has, 300)
    if not has:
        return None
    endpoints = [
        e for e in WebhookEndpoint.objects.filter(owner_id=user_id, enabled=True) if _wants(e, type)
    ]
    if not endpoints:
        return None
    event, created = WebhookEvent.objects.get_or_create(
        key=key[:200],
        defaults={
            "public_id": "evt_" + secrets.token_hex(12),
            "owner_id": user_id,
            "type": type,
            "data": json.loads(json.dumps(data, cls=DjangoJSONEncoder)),
        },
    )
    if not created:
        return event
    WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(endpoint=e, event=event) for e in endpoints], ignore_conflicts=True
    )
    webhook_deliveries_queue(endpoint_ids=[e.pk for e in endpoints])
    return event


def _flush_queued_key(endpoint_id: int) -> str:
    return f"webhooks:flush-queued:{endpoint_id}"


def webhook_deliveries_queue(*, endpoint_ids: list[int]) -> None:
    """After the caller's commit, ask a worker to flush each endpoint (new deliveries wait
    there). Also for events written in SQL: the gift function returns its endpoint ids.

    One queued flush per endpoint at a time: while one is queued and not started (a cache
    key its task deletes first thing, ``webhook_endpoint_flush_queued``), it will see this
    delivery, so a creator's burst of gifts queues one task, not one per gift.
    """
    if not endpoint_ids:
        return

    def deliver() -> None:
        from notifications.tasks import webhook_endpoint_flush_task

        for endpoint_id in endpoint_ids:
            key = _flush_queued_key(endpoint_id)
            if cache.add(key, 1, 60) is False:  # None: Redis away, queue it anyway
                continue
            try:
                webhook_endpoint_flush_task.delay(endpoint_id)
            except Exception:  # the broker is down: the beat flush delivers it
                cache.delete(key)
                log.warning("could not queue webhook delivery to endpoint %s", endpoint_id)

    transaction.on_commit(deliver)


def webhook_endpoint_flush_queued(*, endpoint_id: int) -> int:
    """The queued flush task: forget the "queued" mark before reading anything, so that a
    delivery committed from now on queues the next task, then flush."""
    cache.delete(_flush_queued_key(endpoint_id))
    return webhook_endpoint_flush(endpoint_id=endpoint_id)


def event_body(event: WebhookEvent) -> bytes:
    return json.dumps(
        {
            "id": event.public_id,
            "type": event.type,
            "created": int(event.created_at.timestamp()),
            "data": event.data,
        },
        separators=(",", ":"),
    ).encode()


# --- Delivery -------------------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(6 * 3600, 60 * 2 ** max(0, attempts - 1)))


def webhook_endpoint_flush(*, endpoint_id: int, limit: int = 100) -> int:
    """Deliver an endpoint's due pending events, oldest first; stop at the first failure (the
    rest wait behind it: order per endpoint). Returns how many were delivered."""
    delivered = 0
    for _ in range(limit):
        outcome = _deliver_next(endpoint_id)
        if outcome != "delivered":
            break
        delivered += 1
    return delivered


def _deliver_next(endpoint_id: int) -> str:
    with transaction.atomic():
        endpoint = (
            # NO KEY UPDATE: a gift inserting a delivery (a key-share lock through the
            # foreign key) never waits for a delivery on the wire.
            WebhookEndpoint.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(pk=endpoint_id, enabled=True)
            .first()
        )
        if endpoint is None:
            return "busy"  # another worker is delivering to it (or it is gone or disabled)
        delivery = (
            WebhookDelivery.objects.select_related("event")
            .filter(endpoint=endpoint, status=DeliveryStatus.PENDING)
            .order_by("id")
            .first()
        )
        if delivery is None:
            return "empty"
        now = timezone.now()
        if delivery.next_attempt_at > now:
            return "waiting"
        body = event_body(delivery.event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(
                secret=endpoint.secret, body=body, timestamp=int(time.time())
            ),
        }
        delivery.attempts += 1
        try:
            status = _post(endpoint.url, body=body, headers=headers)
            error = "" if 200 <= status < 300 else f"HTTP {status}"
        except UnsafeUrl as exc:
            status, error = None, exc.message
        except (OSError, http.client.HTTPException) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"[:500]
        delivery.last_status_code = status
        delivery.last_error = error
        if not error:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.save()
            if endpoint.failing_since is not None:
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
            return "delivered"
        give_up_at = delivery.created_at + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
        if now >= give_up_at:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.next_attempt_at = min(now + _backoff(delivery.attempts), give_up_at)
        delivery.save()
        failing_since = endpoint.failing_since or now
        if endpoint.failing_since is None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=now)
        if now - failing_since >= timedelta(hours=settings.WEBHOOK_RETRY_HOURS):
            _endpoint_disable(endpoint, reason=f"failing since {failing_since:%Y-%m-%d %H:%M} UTC")
        return "failed"


def _endpoint_disable(endpoint: WebhookEndpoint, *, reason: str) -> None:
    from notifications.services import email_enqueue, site_url

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason=reason)
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, last_error="endpoint disabled"
    )
    cache.delete(_has_endpoints_key(endpoint.owner_id))
    email_enqueue(
        event=f"webhook_disabled:{endpoint.pk}:{int(timezone.now().timestamp())}",
        user=endpoint.owner,
        template="webhook_disabled",
        category=EmailCategory.ACCOUNT,
        context={
            "url": endpoint.url,
            "reason": reason,
            "hours": settings.WEBHOOK_RETRY_HOURS,
            "docs_url": site_url("/api/docs/"),
        },
    )


def webhook_flush_all() -> int:
    """The beat sweep: every enabled endpoint with a due pending delivery."""
    endpoint_ids = (
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=timezone.now(),
            endpoint__enabled=True,
        )
        .values_list("endpoint_id", flat=True)
        .distinct()
    )
    return sum(webhook_endpoint_flush(endpoint_id=e) for e in list(endpoint_ids))


@transaction.atomic
def webhook_delivery_replay(*, user: User, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Send one event again (a delivered one too: receivers dedupe on the event id), with a
    fresh retry window. Replaying on a disabled endpoint turns it back on."""
    endpoint = webhook_endpoint_get(user=user, endpoint_id=endpoint_id)
    now = timezone.now()
    updated = WebhookDelivery.objects.filter(pk=delivery_id, endpoint=endpoint).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now, created_at=now, last_error=""
    )
    if not updated:
        raise NotFound()
    if not endpoint.enabled:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            enabled=True, disabled_reason="", failing_since=None
        )
        transaction.on_commit(lambda: cache.delete(_has_endpoints_key(user.pk)))
    transaction.on_commit(lambda: _flush_later(endpoint.pk))
    return WebhookDelivery.objects.select_related("event").get(pk=delivery_id)


def _flush_later(endpoint_id: int) -> None:
    from notifications.tasks import webhook_endpoint_flush_task

    webhook_endpoint_flush_task.delay(endpoint_id)
