"""API rate limits. Kept free of DRF view imports: DEFAULT_THROTTLE_CLASSES points here."""

import hashlib

from rest_framework.throttling import SimpleRateThrottle


class AuthIPThrottle(SimpleRateThrottle):
    """Sign-up and login attempts per client address."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": "auth-ip", "ident": self.get_ident(request)}


class AuthUsernameThrottle(SimpleRateThrottle):
    """Login attempts per username, whatever address they come from."""

    scope = "auth"

    def get_cache_key(self, request, view):
        data = request.data if hasattr(request.data, "get") else {}
        username = str(data.get("username", "")).strip().lower()[:150]
        if not username:
            return None
        digest = hashlib.sha256(username.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": "auth-user", "ident": digest}


class MoneyThrottle(SimpleRateThrottle):
    """Money-moving POSTs per user."""

    scope = "money"

    def get_cache_key(self, request, view):
        if request.method != "POST" or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": "money", "ident": request.user.pk}
