"""API rate limits. Kept free of DRF view imports: DEFAULT_THROTTLE_CLASSES points here.

Every throttle that counts per address takes the address from ``accounts.client_address``
(``TRUSTED_PROXY_COUNT``), never DRF's own reading of ``X-Forwarded-For``: with DRF's default
(``NUM_PROXIES`` unset) a client who sends a new forged header on each request gets a new
counter each time. ``NUM_PROXIES`` is set to the same count for any DRF throttle not listed here.
"""

import hashlib

from rest_framework.throttling import SimpleRateThrottle

from accounts.client_address import client_address


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


class MoneyThrottle(SimpleRateThrottle):
    """Money-moving POSTs per user."""

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
