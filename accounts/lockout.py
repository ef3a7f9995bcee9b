"""Login lockout: repeated failed logins lock a username for a while, on every surface.

Usernames are public, so a lock anyone can trigger would let a stranger keep any creator or
staff member out. Failures are therefore counted per (username, client address), the address
from ``accounts.client_address`` (``TRUSTED_PROXY_COUNT``): after ``LOGIN_LOCKOUT_FAILURES``
that pair is locked for ``LOGIN_LOCKOUT_FIRST_SECONDS``, and each further failure from it
doubles the lock, up to ``LOGIN_LOCKOUT_SECONDS``; the pair's count is remembered for a day
after its last failure. The owner, from their own address, is not affected. A lock per username
from every address (a botnet spreading one account's guesses) comes only far above that,
``LOGIN_LOCKOUT_USERNAME_FAILURES`` within ``LOGIN_LOCKOUT_SECONDS``, and spares the addresses
that signed in as that username in the last 30 days.

``LockoutBackend`` (first in ``AUTHENTICATION_BACKENDS``) refuses a locked username before any
password is checked, so the API token endpoint, the portal login and the staff admin login all
honour it: the API answers 429 ``account_locked`` with Retry-After; the pages show their usual
"wrong credentials" message (no account enumeration). Wrong one-time codes at the admin's
second step count here too (``staff.sites``). A successful login clears the pair's count. With
Redis down the cache fails open, and so does the lockout (the throttles still bound the rate
per process).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from accounts.client_address import client_address
from config.errors import DomainError

if TYPE_CHECKING:
    from accounts.models import User


UserModel = get_user_model()
log = logging.getLogger(__name__)

# How long a (username, address) pair's failures are remembered after the last one: the
# growing delays start again from the first step only after a quiet day.
PAIR_MEMORY_SECONDS = 24 * 3600
# An address that signed in as a username is spared that username's botnet lock this long.
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600


class AccountLocked(DomainError):
    code = "account_locked"
    status = 429
    default_message = "Too many failed logins for this account. Please try again later."


def _username(value) -> str:
    return str(value or "").strip().lower()[:150]


def _address(request) -> str:
    return client_address(request) or "-"


def _keys(username: str, address: str) -> dict[str, str]:
    user_digest = hashlib.sha256(username.encode()).hexdigest()[:32]
    pair_digest = hashlib.sha256(f"{username}\n{address}".encode()).hexdigest()[:32]
    return {
        "pair": f"lockout:pair:{pair_digest}",
        "pair_lock": f"lockout:pairlock:{pair_digest}",
        "known": f"lockout:known:{pair_digest}",
        "user": f"lockout:user:{user_digest}",
    }


def _count(key: str) -> int:
    try:
        return int(cache.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _incr(key: str, timeout: int) -> int:
    # add() starts the window; incr() keeps its expiry, so a window ends on its own.
    if cache.add(key, 1, timeout):
        return 1
    try:
        return int(cache.incr(key) or 0)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout)
        return 1


def pair_lock_seconds(failures: int) -> int:
    """How long the ``failures``-th failure from one address locks that pair (0: not yet)."""
    over = failures - settings.LOGIN_LOCKOUT_FAILURES
    if over < 0:
        return 0
    cap = settings.LOGIN_LOCKOUT_SECONDS
    return min(cap, settings.LOGIN_LOCKOUT_FIRST_SECONDS * 2 ** min(over, 30))


def seconds_locked(username, request=None) -> int:
    """How many more seconds this username is locked for this client (0: not locked)."""
    username = _username(username)
    if not username:
        return 0
    keys = _keys(username, _address(request))
    try:
        until = float(cache.get(keys["pair_lock"]) or 0)
    except (TypeError, ValueError):
        until = 0.0
    left = math.ceil(until - time.time())
    if left > 0:
        return left
    if _count(keys["user"]) >= settings.LOGIN_LOCKOUT_USERNAME_FAILURES and not cache.get(
        keys["known"]
    ):
        return settings.LOGIN_LOCKOUT_SECONDS  # at most: the username's window runs out sooner
    return 0


def is_known_address(username, request=None) -> bool:
    """Whether this client's address signed in as ``username`` in the last 30 days."""
    username = _username(username)
    return bool(username) and bool(cache.get(_keys(username, _address(request))["known"]))


def is_locked(username, request=None) -> bool:
    return seconds_locked(username, request) > 0


def record_failure(username, request=None) -> None:
    username = _username(username)
    if not username:
        return
    address = _address(request)
    keys = _keys(username, address)
    if cache.get(keys["pair_lock"]):
        return  # a try while locked was refused unread: not a guess, and no longer lock
    _incr(keys["user"], settings.LOGIN_LOCKOUT_SECONDS)
    failures = _incr(keys["pair"], PAIR_MEMORY_SECONDS)
    cache.touch(keys["pair"], PAIR_MEMORY_SECONDS)
    seconds = pair_lock_seconds(failures)
    if seconds:
        cache.set(keys["pair_lock"], time.time() + seconds, seconds)
        log.warning(
            "login locked: username=%s address=%s failures=%s seconds=%s",
            username,
            address,
            failures,
            seconds,
        )


def locked_just_now(username, request=None) -> bool:
    """True once per lock: the first time it is asked after this (username, address) locked.

    For an audit line per lock rather than one per refused attempt.
    """
    username = _username(username)
    if not username or not is_locked(username, request):
        return False
    pair_key = _keys(username, _address(request))["pair"]
    return bool(cache.add(f"lockout:noted:{pair_key}", 1, settings.LOGIN_LOCKOUT_SECONDS))


def clear(username, request=None) -> None:
    """A successful login: the pair starts afresh, and the address is known for this username."""
    username = _username(username)
    if username:
        keys = _keys(username, _address(request))
        cache.delete_many([keys["pair"], keys["pair_lock"]])
        cache.set(keys["known"], 1, KNOWN_ADDRESS_SECONDS)


def check_or_raise(username, request=None) -> None:
    """For the API: refuse a locked username with 429 before looking at the password."""
    seconds = seconds_locked(username, request)
    if seconds:
        error = AccountLocked()
        error.retry_after = seconds
        raise error


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
def _on_logged_in(sender, request, user: User, **kwargs):
    clear(user.get_username(), request)
