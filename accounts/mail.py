"""Mail that accounts needs sent (the address check at sign-up, the password reset link),
without importing the app that sends it.

``accounts`` sits at the bottom of the import graph: it imports no other app. The app that
owns email (``notifications``, whose services import ``accounts``) registers one sender per
kind at start-up (``NotificationsConfig.ready``), and accounts calls
``account_mail_send(kind=…)``. The import edge points one way (notifications → accounts); the
call goes the other way through this registry, decided at start-up, not at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from accounts.models import User


VERIFY_EMAIL = "verify_email"  # sender(user=)
PASSWORD_RESET = "password_reset"  # noqa: S105 (a mail's kind) sender(user=, reset_url=, request_id=)
KINDS = (VERIFY_EMAIL, PASSWORD_RESET)

_senders: dict[str, Callable[..., Any]] = {}


def account_mail_register(*, kind: str, sender: Callable[..., Any]) -> None:
    """Name the function that sends mail of ``kind`` (called once, from an AppConfig.ready)."""
    if kind not in KINDS:
        raise ValueError(f"unknown account mail kind {kind!r}")
    _senders[kind] = sender


def account_mail_send(*, kind: str, user: User, **context: Any) -> Any:
    """Send (queue) mail of ``kind`` to ``user`` through the registered sender, in the
    caller's transaction. No sender registered is a configuration error, never a silent drop."""
    sender = _senders.get(kind)
    if sender is None:
        raise ImproperlyConfigured(
            f"No sender for account mail {kind!r}: is the notifications app installed?"
        )
    return sender(user=user, **context)
