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

from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from accounts.client_address import client_address

log = logging.getLogger(__name__)

# GCRA (the generic cell rate algorithm) in one Redis call: the key holds the "theoretical
# arrival time" (ms) of the next request; a request may pass while it is at most
# ``tolerance`` ahead of now, and moves it on by one ``interval`` (duration / rate). So
# "600/min" lets 600 through at once, then one every 100 ms; a refusal says how long to wait.
# Atomic (a script runs alone), one round trip, nothing pickled, no read-modify-write race.
_GCRA_FUNCTION = """
local function gcra(key, now, interval, tolerance)
  local tat = tonumber(redis.call('GET', key) or '') or now
  if tat < now then tat = now end
  if tat - now > tolerance then return tat - now - tolerance end
  tat = tat + interval
  redis.call('SET', key, tat, 'PX', math.ceil(tat - now))
  return -1
end
"""
_GCRA = (
    _GCRA_FUNCTION
    + "return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))\n"
)
# The API token's cache entry (accounts.auth: "<user id> <expiry ms or 0> <active 1/0>\n"
# first) and the money throttle of its user, in one call: the gift's hot path makes one Redis
# round trip. A missing, expired or inactive entry is not counted (-2): the caller
# authenticates through the database, then counts the throttle on its own, as before. The
# throttle's key is built here from the entry's user id (one Redis server, not a cluster).
_TOKEN_AND_GCRA = (
    _GCRA_FUNCTION
    + """
local entry = redis.call('GET', KEYS[1])
if not entry then return {'', -2} end
local now = tonumber(ARGV[1])
local user, expiry, active = string.match(entry, '^(%d+) (%d+) (%d)\\n')
if not user or active ~= '1' or (tonumber(expiry) ~= 0 and tonumber(expiry) <= now) then
  return {entry, -2}
end
return {entry, gcra(ARGV[2] .. user, now, tonumber(ARGV[3]), tonumber(ARGV[4]))}
"""
)
_scripts: dict[tuple[int, str], Any] = {}


def _script(client: Any, source: str) -> Any:
    script = _scripts.get((id(client), source))
    if script is None:
        script = _scripts[(id(client), source)] = client.register_script(source)
    return script


def _gcra(key: str, *, now_ms: int, interval_ms: int, tolerance_ms: int) -> int | None:
    """-1 when the request may pass, else the milliseconds to wait; None without Redis (the
    caller counts DRF's way). Raises when Redis is unreachable."""
    from accounts.auth import redis_client

    client = redis_client()
    if client is None:
        return None
    # Its own key: never the pickled list DRF's counting (or an older release) keeps.
    redis_key = cache.make_key(f"gcra:{key}")
    script = _script(client, _GCRA)
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
        interval_ms, tolerance_ms = self._gcra_ms()
        try:
            wait_ms = _gcra(
                self.key,
                now_ms=int(self.timer() * 1000),
                interval_ms=interval_ms,
                tolerance_ms=tolerance_ms,
            )
        except Exception as exc:  # Redis away: fail open
            log.warning("throttle %s not counted: %s: %s", self.scope, type(exc).__name__, exc)
            return True
        if wait_ms is None:
            return super().allow_request(request, view)
        self.wait_ms = wait_ms
        return wait_ms < 0

    def _gcra_ms(self) -> tuple[int, int]:
        interval_ms = self.duration * 1000 / self.num_requests
        return math.ceil(interval_ms), math.ceil(interval_ms * (self.num_requests - 1))

    def wait(self) -> float | None:
        wait_ms: int | None = getattr(self, "wait_ms", None)
        if wait_ms is None:
            return super().wait()
        return max(wait_ms, 0) / 1000


class MoneyThrottle(AtomicRateThrottle):
    """Money-moving POSTs per user (the gift's hot path: one Redis call with the token)."""

    scope = "money"
    counted: bool = False  # by ``token_entry``: allow_request must not count again

    def token_entry(self, client: Any, entry_key: str) -> Any:
        """The API token's cache entry under ``entry_key``, read in the same Redis call that
        counts this throttle for the entry's user (when the entry is valid and a rate is
        set): afterwards ``counted`` says whether it was counted, and ``allow_request`` gives
        that answer without another call. Raises when Redis is unreachable."""
        if self.rate is None:
            return client.get(entry_key)
        interval_ms, tolerance_ms = self._gcra_ms()
        prefix = cache.make_key("gcra:" + self.cache_format % {"scope": self.scope, "ident": ""})
        entry, wait_ms = _script(client, _TOKEN_AND_GCRA)(
            keys=[entry_key],
            args=[int(self.timer() * 1000), str(prefix), interval_ms, tolerance_ms],
        )
        if int(wait_ms) != -2:
            self.counted, self.wait_ms = True, int(wait_ms)
        return entry or None

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.counted:
            return self.wait_ms < 0
        return super().allow_request(request, view)

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
