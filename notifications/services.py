"""Email: the outbox, sending, verification and unsubscribing. Every app may import this.

``email_enqueue`` is the one call other apps make: inside their own transaction, beside the
event it tells about. Nothing is sent from inside a transaction; the send task (after the
commit) and the beat sweep (after a crash) deliver it.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from config.errors import DomainError
from notifications.models import EmailCategory, EmailPreference, EmailStatus, OutboxEmail

if TYPE_CHECKING:
    from accounts.models import User


log = logging.getLogger(__name__)

VERIFY_SALT = "applause.notifications.verify"
UNSUBSCRIBE_SALT = "applause.notifications.unsubscribe"


class InvalidLink(DomainError):
    code = "invalid_link"
    status = 400
    default_message = "This link is invalid or has expired."


# --- Preferences and verification ------------------------------------------------------------


def preference_get(*, user: User) -> EmailPreference:
    preference, _created = EmailPreference.objects.get_or_create(user=user)
    return preference


def email_is_verified(*, user: User) -> bool:
    preference = EmailPreference.objects.filter(user=user).first()
    return bool(preference and preference.is_verified_for(user.email))


def site_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def verification_link(*, user: User) -> str:
    token = signing.dumps({"u": user.pk, "e": user.email.lower()}, salt=VERIFY_SALT)
    return site_url(f"/email/verify/{token}/")


@transaction.atomic
def email_verification_send(*, user: User) -> OutboxEmail | None:
    """Queue the sign-up (or "resend") verification message. A new one per call and address."""
    if not user.email or email_is_verified(user=user):
        return None
    sent_before = OutboxEmail.objects.filter(
        user=user, event__startswith=f"verify:{user.pk}:", to_email=user.email
    ).count()
    return email_enqueue(
        event=f"verify:{user.pk}:{user.email.lower()}:{sent_before}",
        user=user,
        template="verify_email",
        category=EmailCategory.SECURITY,
        context={"link": verification_link(user=user), "days": settings.EMAIL_VERIFY_DAYS},
    )


@transaction.atomic
def email_verify(*, token: str):
    """Mark the address in a verification link verified. Returns the user."""
    User = get_user_model()  # notifications sit at the bottom, beside accounts
    try:
        data = signing.loads(
            token, salt=VERIFY_SALT, max_age=timedelta(days=settings.EMAIL_VERIFY_DAYS)
        )
    except signing.BadSignature:
        raise InvalidLink("This verification link is invalid or has expired.")
    user = User.objects.filter(pk=data.get("u")).first()
    if user is None or user.email.lower() != data.get("e"):
        raise InvalidLink("This verification link is for an address that is no longer yours.")
    preference = preference_get(user=user)
    EmailPreference.objects.filter(pk=preference.pk).update(
        verified_email=user.email, verified_at=timezone.now(), updated_at=timezone.now()
    )
    return user


def unsubscribe_token(*, user: User, category: str) -> str:
    return signing.dumps({"u": user.pk, "c": category}, salt=UNSUBSCRIBE_SALT)


def unsubscribe_link(*, user: User, category: str) -> str:
    return site_url(f"/email/unsubscribe/{unsubscribe_token(user=user, category=category)}/")


def unsubscribe_read(*, token: str):
    """(user, category) of an unsubscribe link; links do not expire (the law says so)."""
    User = get_user_model()  # notifications sit at the bottom, beside accounts
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        raise InvalidLink("This unsubscribe link is invalid.")
    user = User.objects.filter(pk=data.get("u")).first()
    if user is None or data.get("c") != EmailCategory.DIGEST:
        raise InvalidLink("This unsubscribe link is invalid.")
    return user, data["c"]


@transaction.atomic
def preference_set(*, user: User, weekly_digest: bool) -> EmailPreference:
    preference = preference_get(user=user)
    EmailPreference.objects.filter(pk=preference.pk).update(
        weekly_digest=weekly_digest, updated_at=timezone.now()
    )
    preference.refresh_from_db()
    return preference


@transaction.atomic
def email_unsubscribe(*, token: str) -> EmailPreference:
    user, _category = unsubscribe_read(token=token)
    return preference_set(user=user, weekly_digest=False)


@transaction.atomic
def password_reset_mail_enqueue(
    *, user: User, reset_url: str, request_id: str
) -> OutboxEmail | None:
    """The password reset link, a ``security`` mail (an unverified address gets it too: it is
    how a locked-out owner gets back in). Registered as accounts' ``password_reset`` sender
    (``accounts.mail``); one row per reset request and account."""
    return email_enqueue(
        event=f"password_reset:{request_id}",
        user=user,
        template="password_reset",
        category=EmailCategory.SECURITY,
        context={"reset_url": reset_url, "valid_minutes": settings.PASSWORD_RESET_TIMEOUT // 60},
    )


# --- The outbox -----------------------------------------------------------------------------


@dataclass
class Rendered:
    subject: str
    text: str
    html: str


def email_render(*, template: str, context: dict[str, Any]) -> Rendered:
    """``<template>.txt``: the subject on its first line, a blank line, the plain body;
    ``<template>.html``: the HTML body (extends the mail base layout)."""
    text = render_to_string(f"notifications/email/{template}.txt", context).strip()
    subject, _, body = text.partition("\n")
    html = render_to_string(f"notifications/email/{template}.html", context)
    return Rendered(subject=" ".join(subject.split())[:255], text=body.strip() + "\n", html=html)


def _skip_reason(
    *, user: User, category: str, preferences: dict[int, EmailPreference] | None = None
) -> str:
    """Why ``user`` may not receive this category ("" when they may). ``preferences``: the
    users' preference rows read beforehand (``email_enqueue_many``), else read here."""
    if not user.email:
        return "no email address"
    if not user.is_active:
        return "account inactive"
    if category == EmailCategory.SECURITY:
        return ""
    if preferences is None:
        preference = EmailPreference.objects.filter(user=user).first()
    else:
        preference = preferences.get(user.pk)
    if preference is None or not preference.is_verified_for(user.email):
        return "address not verified"
    if category == EmailCategory.DIGEST and not preference.weekly_digest:
        return "unsubscribed"
    return ""


def email_enqueue(
    *,
    event: str,
    user: User,
    template: str,
    category: str = EmailCategory.ACCOUNT,
    context: dict[str, Any] | None = None,
) -> OutboxEmail | None:
    """Write one message about ``event`` to ``user`` into the outbox, in the caller's
    transaction; the send task runs after the commit. The same (event, user) twice is one
    message: the second call returns the first row. Addresses that may not receive this
    category get a ``skipped`` row (kept as a record), never a message.
    """
    existing = OutboxEmail.objects.filter(event=event, user=user).first()
    if existing is not None:
        return existing
    context = {
        "user": user,
        "site_url": settings.SITE_URL,
        "preferences_url": site_url("/account/notifications/"),
        **(context or {}),
    }
    headers: dict[str, str] = {}
    if category == EmailCategory.DIGEST:
        link = unsubscribe_link(user=user, category=category)
        context["unsubscribe_url"] = link
        # RFC 2369 and RFC 8058: mail clients show an "Unsubscribe" button that POSTs here.
        headers["List-Unsubscribe"] = f"<{link}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    rendered = email_render(template=template, context=context)
    reason = _skip_reason(user=user, category=category)
    row = OutboxEmail(
        event=event[:200],
        user=user,
        to_email=user.email,
        category=category,
        template=template,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        headers=headers,
        status=EmailStatus.SKIPPED if reason else EmailStatus.PENDING,
        last_error=reason,
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        # A concurrent transaction wrote this (event, user) first.
        return OutboxEmail.objects.filter(event=event, user=user).first()
    if not reason:
        _send_after_commit(row.pk)
    return row


@dataclass(frozen=True)
class Mail:
    """One message for ``email_enqueue_many``."""

    event: str
    user: User
    template: str
    context: dict[str, Any]


def email_enqueue_many(*, mails: list[Mail], category: str = EmailCategory.ACCOUNT) -> int:
    """``email_enqueue`` for many messages of one category at once (the bulk jobs, e.g. a
    reconciliation page's receipts), in the caller's transaction: one read of the rows already
    written, one of the preferences, one insert (a concurrent (event, user) is skipped), and
    one sweep task after the commit instead of a send task per message (the beat sweep sends
    what it leaves). Digest mails, which carry per-user headers, go through ``email_enqueue``.
    Returns how many rows were written."""
    if category == EmailCategory.DIGEST:
        raise ValueError("digest mails go through email_enqueue")
    if not mails:
        return 0
    events = [m.event[:200] for m in mails]
    existing = set(OutboxEmail.objects.filter(event__in=events).values_list("event", "user_id"))
    todo = [m for m, e in zip(mails, events, strict=True) if (e, m.user.pk) not in existing]
    preferences = {
        p.user_id: p for p in EmailPreference.objects.filter(user_id__in={m.user.pk for m in todo})
    }
    rows = []
    for mail in todo:
        context = {
            "user": mail.user,
            "site_url": settings.SITE_URL,
            "preferences_url": site_url("/account/notifications/"),
            **mail.context,
        }
        rendered = email_render(template=mail.template, context=context)
        reason = _skip_reason(user=mail.user, category=category, preferences=preferences)
        rows.append(
            OutboxEmail(
                event=mail.event[:200],
                user=mail.user,
                to_email=mail.user.email,
                category=category,
                template=mail.template,
                subject=rendered.subject,
                body_text=rendered.text,
                body_html=rendered.html,
                headers={},
                status=EmailStatus.SKIPPED if reason else EmailStatus.PENDING,
                last_error=reason,
            )
        )
    OutboxEmail.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    if any(row.status == EmailStatus.PENDING for row in rows):
        transaction.on_commit(_flush_soon)
    return len(rows)


def _flush_soon() -> None:
    from notifications.tasks import email_outbox_flush_task

    try:
        email_outbox_flush_task.delay()
    except Exception:  # the broker is down: the beat sweep sends them later
        log.warning("could not queue the outbox sweep; the beat sweep will send")


def _send_after_commit(email_id: int) -> None:
    def send() -> None:
        from notifications.tasks import email_send_task

        try:
            email_send_task.delay(email_id)
        except Exception:  # the broker is down: the beat sweep sends it later
            log.warning("could not queue email %s; the outbox sweep will send it", email_id)

    transaction.on_commit(send)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 60 * 2 ** max(0, attempts - 1)))


# Mails whose body holds a secret link (whoever reads it can take the account over): staff do
# not see their bodies in the admin, and the bodies are blanked once the mail is sent.
SECRET_TEMPLATES = frozenset({"password_reset"})
REDACTED = "(Removed after sending: this message held a one-time link.)\n"

TRANSIENT_ERRORS = (smtplib.SMTPException, socket.error, OSError)


def email_send(*, email_id: int) -> OutboxEmail | None:
    """Send one pending message. Safe to run twice and beside itself.

    The row stays locked (``FOR UPDATE SKIP LOCKED``) from the claim through the SMTP
    conversation to the ``sent`` mark, all in one transaction: a second worker skips it, and a
    crash anywhere before the commit leaves it pending for the sweep. The only way to a
    duplicate is a crash between the server's "250 OK" and our commit; the resend carries the
    same Message-ID, which receivers use to drop it.
    """
    with transaction.atomic():
        row = (
            OutboxEmail.objects.select_for_update(skip_locked=True)
            .filter(pk=email_id, status=EmailStatus.PENDING)
            .first()
        )
        if row is None:
            return None
        now = timezone.now()
        row.attempts += 1
        try:
            _deliver(row)
        except TRANSIENT_ERRORS as exc:
            row.last_error = f"{type(exc).__name__}: {exc}"[:500]
            if row.attempts >= settings.EMAIL_MAX_ATTEMPTS:
                row.status = EmailStatus.FAILED
                log.error("email %s failed for good: %s", row.pk, row.last_error)
            else:
                row.next_attempt_at = now + _backoff(row.attempts)
            row.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
            return row
        row.status = EmailStatus.SENT
        row.sent_at = now
        row.last_error = ""
        fields = ["attempts", "last_error", "status", "sent_at"]
        if row.template in SECRET_TEMPLATES:
            row.body_text, row.body_html = REDACTED, ""
            fields += ["body_text", "body_html"]
        row.save(update_fields=fields)
        return row


def _deliver(row: OutboxEmail) -> None:
    message = EmailMultiAlternatives(
        subject=row.subject,
        body=row.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[row.to_email],
        headers={"Message-ID": row.message_id, **row.headers},
        connection=get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT),
    )
    if row.body_html:
        message.attach_alternative(row.body_html, "text/html")
    message.send(fail_silently=False)


def email_outbox_due(*, limit: int = 500) -> list[int]:
    return list(
        OutboxEmail.objects.filter(status=EmailStatus.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


def email_outbox_flush(*, limit: int = 500) -> dict[str, int]:
    """Send every due message (the beat sweep: lost tasks, crashes, retries that are due)."""
    counts = {"sent": 0, "retry": 0, "failed": 0, "busy": 0}
    for email_id in email_outbox_due(limit=limit):
        row = email_send(email_id=email_id)
        if row is None:
            counts["busy"] += 1
        elif row.status == EmailStatus.SENT:
            counts["sent"] += 1
        elif row.status == EmailStatus.FAILED:
            counts["failed"] += 1
        else:
            counts["retry"] += 1
    return counts
