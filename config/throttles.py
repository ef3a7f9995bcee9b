"""API rate limits. Kept free of DRF view imports: DEFAULT_THROTTLE_CLASSES points here.

Every throttle that counts per address takes the address from ``accounts.client_address``
(``TRUSTED_PROXY_COUNT``), never DRF's own reading of ``X-Forwarded-For``: with DRF's default
(``NUM_PROXIES`` unset) a client who sends a new forged header on each request gets a new
counter each time. ``NUM_PROXIES`` is set to the same count for any DRF throttle not listed here.
"""

import hashlib
import logging
import math
from typing import Any

from django.core.cache import cache, caches
from rest_framework.throttling import SimpleRateThrottle

from accounts.client_address import client_address

log = logging.getLogger(__name__)

# GCRA (the generic cell rate algorithm) in one Redis call: the key holds the "theoretical
# arrival time" (ms) of the next request; a request may pass while it is at most
# ``tolerance`` ahead of now, and moves it on by one ``interval`` (duration / rate). So
# "600/min" lets 600 through at once, then one every 100 ms; a refusal says how long to wait.
# Atomic (a script runs alone), one round trip, nothing pickled, no read-modify-write race.
_GCRA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
if tat < now then tat = now end
if tat - now > tolerance then return tat - now - tolerance end
tat = tat + interval
redis.call('SET', KEYS[1], tat, 'PX', math.ceil(tat - now))
return -1
"""
_gcra_scripts: dict[int, Any] = {}


def _gcra(key: str, *, now_ms: int, interval_ms: int, tolerance_ms: int) -> int | None:
    """-1 when the request may pass, else the milliseconds to wait; None without Redis (the
    caller counts DRF's way). Raises when Redis is unreachable."""
    from django_redis import get_redis_connection
    from django_redis.cache import RedisCache

    if not isinstance(caches["default"], RedisCache):
        return None
    client = get_redis_connection("default")
    script = _gcra_scripts.get(id(client))
    if script is None:
        script = _gcra_scripts[id(client)] = client.register_script(_GCRA)
    # Its own key: never the pickled list DRF's counting (or an older release) keeps.
    redis_key = cache.make_key(f"gcra:{key}")
    return int(script(keys=[redis_key], args=[now_ms, interval_ms, tolerance_ms]))


class _ClientAddressThrottle(SimpleRateThrottle):
    def get_ident(self, request):
        return client_address(request) or "unknown"


class AuthIPThrottle(_ClientAddressThrottle):
    """Sign-up and login attempts per client address."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": "auth-ip", "ident": self.get_ident(request)}


class SignupThrottle(_ClientAddressThrottle):
    """New accounts per client address, on the API and the portal alike (one budget)."""

    scope = "signup"

    def get_cache_key(self, request, view):
        if request.method != "POST":
            return None
        return self.cache_format % {"scope": "signup", "ident": self.get_ident(request)}


class AuthUsernameThrottle(SimpleRateThrottle):
    """Login attempts per username, whatever address they come from.

    Addresses that signed in as that username recently are spared (``accounts.lockout``), so a
    stranger hammering a public username cannot keep its owner out.
    """

    scope = "auth"

    def get_cache_key(self, request, view):
        from accounts import lockout  # the auth backend's module, loaded after the apps

        data = request.data if hasattr(request.data, "get") else {}
        username = str(data.get("username", "")).strip().lower()[:150]
        if not username or lockout.is_known_address(username, request):
            return None
        digest = hashlib.sha256(username.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": "auth-user", "ident": digest}


class PasswordResetIPThrottle(_ClientAddressThrottle):
    """Password reset requests per client address (API and portal)."""

    scope = "password_reset"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": "pwreset-ip", "ident": self.get_ident(request)}


class AtomicRateThrottle(SimpleRateThrottle):
    """``SimpleRateThrottle``'s rates and keys, counted with one atomic Redis call (GCRA, see
    ``_GCRA``) instead of DRF's pickled list of timestamps (a read and a write, racing).

    Fails open: with Redis down (or slow past ``REDIS_TIMEOUT``) the request passes, as the
    cache-based throttles do. Without Redis (the local-memory cache of ``make run``) it is
    DRF's own counting.
    """

    num_requests: int
    duration: int

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        interval_ms = self.duration * 1000 / self.num_requests
        try:
            wait_ms = _gcra(
                self.key,
                now_ms=int(self.timer() * 1000),
                interval_ms=math.ceil(interval_ms),
                tolerance_ms=math.ceil(interval_ms * (self.num_requests - 1)),
            )
        except Exception as exc:  # Redis away: fail open
            log.warning("throttle %s not counted: %s: %s", self.scope, type(exc).__name__, exc)
            return True
        if wait_ms is None:
            return super().allow_request(request, view)
        self.wait_ms = wait_ms
        return wait_ms < 0

    def wait(self) -> float | None:
        wait_ms: int | None = getattr(self, "wait_ms", None)
        if wait_ms is None:
            return super().wait()
        return max(wait_ms, 0) / 1000


class MoneyThrottle(AtomicRateThrottle):
    """Money-moving POSTs per user (the gift's hot path: one Redis call)."""

    scope = "money"

    def get_cache_key(self, request, view):
        if request.method != "POST" or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": "money", "ident": request.user.pk}


class RechargeThrottle(SimpleRateThrottle):
    """Purchases started per user: far tighter than gifts (``money``), as each one is a Stripe
    PaymentIntent and, with a ``payment_method``, a card charged on the spot."""

    scope = "recharge"

    def get_cache_key(self, request, view):
        if request.method != "POST" or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": "recharge", "ident": request.user.pk}


class LiveOpenThrottle(_ClientAddressThrottle):
    """Live feed streams opened per client address (each reconnect is one)."""

    scope = "live_open"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": "live-open", "ident": self.get_ident(request)}
