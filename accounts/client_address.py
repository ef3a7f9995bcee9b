"""The client's address: the one place every app reads it (lockout, throttles, audit rows, logs).

Behind a load balancer ``REMOTE_ADDR`` is the balancer's own address, the same for every
client. Each proxy appends the address it saw to ``X-Forwarded-For``, so with
``TRUSTED_PROXY_COUNT`` = N proxies of ours in front of the app, the client is the Nth entry
from the right: the one our outermost proxy wrote. Everything to the left of it came from the
client and is forgeable, so it is never read. With N = 0 (the default: nothing in front, or a
proxy that rewrites ``REMOTE_ADDR`` itself) the header is ignored altogether. A header with
fewer entries than N did not come through our proxies as configured (someone reached the app
directly): then ``REMOTE_ADDR`` is the only address we can trust.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, TypeAlias

from django.conf import settings

if TYPE_CHECKING:
    from django.http import HttpRequest
    from rest_framework.request import Request

# A service's ``request``: the portal's or the admin's Django request, or the API's DRF one.
ClientRequest: TypeAlias = "HttpRequest | Request"


def _parse(value: str) -> str | None:
    """A valid IP address in canonical form, or None. Tolerates ``[v6]:port`` and ``v4:port``."""
    value = value.strip()
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def trusted_proxy_count() -> int:
    return max(0, int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0))


def client_address(request: ClientRequest | None) -> str | None:
    """The address of the client that sent ``request`` (Django's or DRF's), or None."""
    if request is None:
        return None
    meta = getattr(request, "META", None) or {}
    remote = _parse(str(meta.get("REMOTE_ADDR") or ""))
    proxies = trusted_proxy_count()
    if proxies == 0:
        return remote
    # Several X-Forwarded-For headers arrive joined by commas, in order: one list.
    entries = [e for e in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if e.strip()]
    if len(entries) < proxies:
        return remote
    return _parse(entries[-proxies]) or remote
