"""API token authentication without a database query per request (issue #15).

knox's ``TokenAuthentication`` costs two queries per request (the token with its user, and all
the user's tokens, to delete expired ones). ``CachedTokenAuthentication`` keeps the verified
token, with its user, in the shared cache (Redis) under the token's SHA-512 digest for
``API_TOKEN_CACHE_SECONDS``:

- the cache key is the digest knox stores, never the token itself;
- a revoked token stops working at once: deleting an AuthToken row (sign-out, password change,
  staff, knox's own clean-up) deletes its cache entry (``post_delete``);
- a changed user (deactivated, new date of birth, staff flags) is not served from the cache:
  saving a user deletes the entries of all their tokens (``post_save``);
- an expired token is refused from the cache too; a miss (or Redis down: the cache fails open)
  takes knox's path through the database.
"""

from __future__ import annotations

import binascii
import logging
import pickle
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import AuthToken

log = logging.getLogger(__name__)


def _cache_key(digest: str) -> str:
    return f"api-token:{digest}"


# A cache entry is one line the money throttle's script can read in Redis (user id, the
# token's expiry in epoch milliseconds or 0, 1 when the user is active), then the pickled
# token with its user: ``b"42 1767225600000 1\n" + pickle``. So one Redis call can fetch the
# token and count the user's throttle (config.throttles.token_and_gcra).
def _entry(auth_token: AuthToken) -> bytes:
    expiry = auth_token.expiry
    expiry_ms = int(expiry.timestamp() * 1000) if expiry is not None else 0
    head = f"{auth_token.user.pk} {expiry_ms} {int(auth_token.user.is_active)}\n"
    return head.encode() + pickle.dumps(auth_token, pickle.HIGHEST_PROTOCOL)


def _from_entry(entry: Any) -> AuthToken | None:
    """The still valid token of a cache entry (None: none, unreadable, expired, inactive)."""
    if not isinstance(entry, bytes):
        return None
    _head, newline, body = entry.partition(b"\n")
    if not newline:
        return None
    try:
        cached = pickle.loads(body)  # noqa: S301  (our own entry in our own cache)
    except Exception:  # an entry of another release: a miss
        return None
    if (
        isinstance(cached, AuthToken)
        and (cached.expiry is None or cached.expiry > timezone.now())
        and cached.user.is_active
    ):
        return cached
    return None


def redis_client() -> Any | None:
    """The default cache's Redis client, or None when the cache is not Redis."""
    from django.core.cache import caches
    from django_redis.cache import RedisCache

    if not isinstance(caches["default"], RedisCache):
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def token_cache_key(token: bytes) -> str | None:
    """The cache key of a presented token (None: cache off, or it cannot be a token). In
    Redis it is stored under ``cache.make_key(key)``, as the cache itself would."""
    if settings.API_TOKEN_CACHE_SECONDS <= 0:
        return None
    try:
        return _cache_key(hash_token(token.decode("utf-8")))
    except (TypeError, ValueError, binascii.Error):
        return None


class CachedTokenAuthentication(TokenAuthentication):
    # How the entry is read from Redis: ``client.get``, or a caller's read that does more in
    # the same round trip (the gift's hot path counts the money throttle with it).
    read: Callable[[Any, str], Any] | None = None

    def authenticate_credentials(self, token: bytes):
        key = token_cache_key(token)
        if key is None:
            return super().authenticate_credentials(token)
        client = redis_client()
        if client is None:
            entry = cache.get(key)
        else:
            try:
                read = self.read or (lambda client, key: client.get(key))
                entry = read(client, str(cache.make_key(key)))
            except Exception as exc:  # Redis away: the database answers (fail open)
                log.warning("token cache not read: %s: %s", type(exc).__name__, exc)
                entry = None
        return self.from_entry(token, key, entry)

    def from_entry(self, token: bytes, key: str, entry: Any):
        """The user and token of a cache entry read under ``key``; on a miss, knox's path
        through the database, and the entry written for the next request."""
        cached = _from_entry(entry)
        if cached is not None:
            return cached.user, cached
        user, auth_token = super().authenticate_credentials(token)
        ttl = settings.API_TOKEN_CACHE_SECONDS
        client = redis_client()
        if client is None:
            cache.set(key, _entry(auth_token), ttl)
        else:
            try:
                client.set(cache.make_key(key), _entry(auth_token), ex=ttl)
            except Exception as exc:
                log.warning("token cache not written: %s: %s", type(exc).__name__, exc)
        return user, auth_token


def forget_token(sender, instance: AuthToken, **kwargs) -> None:
    cache.delete(_cache_key(instance.digest))


def forget_user_tokens(sender, instance, **kwargs) -> None:
    digests = AuthToken.objects.filter(user_id=instance.pk).values_list("digest", flat=True)
    keys = [_cache_key(digest) for digest in digests]
    if keys:
        cache.delete_many(keys)


class CachedTokenScheme(KnoxTokenScheme):
    """The OpenAPI security scheme: the same ``Authorization: Token <key>`` as knox's."""

    target_class = "accounts.auth.CachedTokenAuthentication"
