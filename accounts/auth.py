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

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import AuthToken


def _cache_key(digest: str) -> str:
    return f"api-token:{digest}"


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        ttl = settings.API_TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return super().authenticate_credentials(token)
        try:
            key = _cache_key(hash_token(token.decode("utf-8")))
        except (TypeError, ValueError, binascii.Error):
            return super().authenticate_credentials(token)
        cached = cache.get(key)
        if (
            isinstance(cached, AuthToken)
            and (cached.expiry is None or cached.expiry > timezone.now())
            and cached.user.is_active
        ):
            return cached.user, cached
        user, auth_token = super().authenticate_credentials(token)
        cache.set(key, auth_token, ttl)
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
