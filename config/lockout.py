"""Login lockout: repeated failed logins lock a username for a while, on every surface.

Failed attempts are counted in the cache (Redis) per username + client address and per
username alone (a higher limit, against a botnet spreading one account's guesses over many
addresses). Past the limit, ``LockoutBackend`` (first in ``AUTHENTICATION_BACKENDS``) refuses
that username before any password is checked, so the API token endpoint, the portal login and
the staff admin login all honour it: the API answers 429 ``account_locked``; the pages show their usual "wrong credentials" message (no account
enumeration). Wrong one-time codes at the admin's second step count here too
(``staff.sites``). A successful login clears the address's counter. With Redis down the cache
fails open, and so does the lockout (the throttles still bound the rate per process).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from config.errors import DomainError

UserModel = get_user_model()


class AccountLocked(DomainError):
    code = "account_locked"
    status = 429
    default_message = "Too many failed logins for this account. Please try again later."


def _limits() -> tuple[int, int, int]:
    per_address = settings.LOGIN_LOCKOUT_FAILURES
    return per_address, per_address * 4, settings.LOGIN_LOCKOUT_SECONDS


def _username(value) -> str:
    return str(value or "").strip().lower()[:150]


def _address(request) -> str:
    if request is None:
        return "-"
    meta = getattr(request, "META", {}) or {}
    return str(meta.get("REMOTE_ADDR") or "-")


def _keys(username: str, address: str) -> tuple[str, str]:
    user_digest = hashlib.sha256(username.encode()).hexdigest()[:32]
    pair_digest = hashlib.sha256(f"{username}\n{address}".encode()).hexdigest()[:32]
    return f"lockout:pair:{pair_digest}", f"lockout:user:{user_digest}"


def _count(key: str) -> int:
    try:
        return int(cache.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def is_locked(username, request=None) -> bool:
    username = _username(username)
    if not username:
        return False
    per_address, per_user, _ = _limits()
    pair_key, user_key = _keys(username, _address(request))
    return _count(pair_key) >= per_address or _count(user_key) >= per_user


def record_failure(username, request=None) -> None:
    username = _username(username)
    if not username:
        return
    _, _, seconds = _limits()
    for key in _keys(username, _address(request)):
        # add() starts the window; incr() never extends it, so a lock ends on its own.
        if not cache.add(key, 1, seconds):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, seconds)


def locked_just_now(username, request=None) -> bool:
    """True once per lock: the first time it is asked after this (username, address) locked.

    For an audit line per lock rather than one per refused attempt.
    """
    username = _username(username)
    if not username or not is_locked(username, request):
        return False
    pair_key = _keys(username, _address(request))[0]
    return bool(cache.add(f"lockout:noted:{pair_key}", 1, _limits()[2]))


def clear(username, request=None) -> None:
    username = _username(username)
    if username:
        cache.delete(_keys(username, _address(request))[0])


def check_or_raise(username, request=None) -> None:
    """For the API: refuse a locked username with 429 before looking at the password."""
    if is_locked(username, request):
        raise AccountLocked()


class LockoutBackend(ModelBackend):
    """``ModelBackend`` that first refuses a locked username.

    It is the first backend and answers for good: a wrong password raises
    ``PermissionDenied`` (which stops ``authenticate()``) rather than handing the same
    credentials to the plain ``ModelBackend`` listed after it, which is only there so sessions
    that name it (``login(..., backend=...)``) stay valid.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(UserModel.USERNAME_FIELD)
        if username is None or password is None:
            return None
        if is_locked(username, request):
            raise PermissionDenied("account locked")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            raise PermissionDenied("invalid credentials")
        return user


@receiver(user_login_failed)
def _on_login_failed(sender, credentials, request=None, **kwargs):
    record_failure(credentials.get("username"), request)


@receiver(user_logged_in)
def _on_logged_in(sender, request, user, **kwargs):
    clear(user.get_username(), request)
