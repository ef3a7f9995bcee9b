"""The "payout destination changed" security email and its undo link.

A change of destination (``payouts.services._method_save``) records what it replaced and
emails the owner at once, verified address or not, with a signed link that puts the old
destination back until the hold (``PAYOUT_DESTINATION_HOLD_HOURS``) ends. The link needs no
sign-in (whoever changed it may have the password now); the signed token is the proof, and it
can only restore what the owner had. A payout already made to the new destination is then
refused by the sender's own re-check of the method (``destination_changed``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.client_address import ClientRequest
from config.errors import DomainError
from payouts.models import PayoutMethod, PayoutMethodChange, Rail

UNDO_SALT = "applause.payouts.destination-undo"
RESTORED_FIELDS = [
    "rail",
    "account_holder",
    "iban",
    "stripe_account_id",
    "is_verified",
    "verified_at",
    "verified_by_id",
    "destination_changed_at",
]


class UndoRefused(DomainError):
    code = "undo_refused"
    status = 400
    default_message = "This undo link is invalid or has expired."


def _snapshot(method: PayoutMethod) -> dict[str, Any]:
    return {
        "rail": method.rail,
        "account_holder": method.account_holder,
        "iban": method.iban,
        "stripe_account_id": method.stripe_account_id,
        "is_verified": method.is_verified,
        "verified_at": method.verified_at.isoformat() if method.verified_at else None,
        "verified_by_id": method.verified_by_id,
        "destination_changed_at": (
            method.destination_changed_at.isoformat() if method.destination_changed_at else None
        ),
    }


def _words(rail: str, iban: str) -> str:
    if rail == Rail.STRIPE:
        return "your Stripe account"
    return f"the bank account ending {iban[-4:]}" if iban else "a bank account"


def destination_change_record(*, before: PayoutMethod, after: PayoutMethod) -> None:
    """Called in the change's transaction, with the method as it was and as it is now."""
    from notifications.models import EmailCategory
    from notifications.services import email_enqueue, site_url

    previous = _snapshot(before)
    change = PayoutMethodChange.objects.create(
        method=after, previous=previous, changed_at=after.destination_changed_at or timezone.now()
    )
    hours = settings.PAYOUT_DESTINATION_HOLD_HOURS
    token = signing.dumps({"c": change.pk}, salt=UNDO_SALT)
    email_enqueue(
        event=f"payout_destination_changed:{change.pk}",
        user=after.creator.user,
        template="payout_destination_changed",
        category=EmailCategory.SECURITY,
        context={
            "old": _words(before.rail, before.iban),
            "new": _words(after.rail, after.iban),
            "when": change.changed_at,
            "hours": hours,
            "until": change.changed_at + timedelta(hours=hours),
            "undo_url": site_url(f"/creator/payout-method/undo/{token}/"),
        },
    )


def _change_for(token: str) -> PayoutMethodChange:
    hours = settings.PAYOUT_DESTINATION_HOLD_HOURS
    try:
        data = signing.loads(token, salt=UNDO_SALT, max_age=timedelta(hours=hours))
    except signing.BadSignature:
        raise UndoRefused(
            f"This undo link is invalid or older than {hours} hours. Contact support."
        )
    change = (
        PayoutMethodChange.objects.select_related("method__creator__user")
        .filter(pk=data.get("c"))
        .first()
    )
    if change is None:
        raise UndoRefused()
    return change


def destination_change_read(*, token: str) -> PayoutMethodChange:
    change = _change_for(token)
    change.old_words = _words(change.previous["rail"], change.previous["iban"])
    return change


@transaction.atomic
def destination_change_undo(*, token: str, request: ClientRequest | None = None) -> PayoutMethod:
    """Put the destination back as it was before this change (once, within the hold, and
    only if nothing changed it again since)."""
    change = _change_for(token)
    method = PayoutMethod.objects.select_for_update().get(pk=change.method_id)
    change = PayoutMethodChange.objects.select_for_update().get(pk=change.pk)
    if change.undone_at is not None:
        raise UndoRefused("This change was already undone.")
    if method.destination_changed_at != change.changed_at:
        raise UndoRefused(
            "The payout method changed again after this; undo that change first "
            "(its own email), or contact support."
        )
    previous = dict(change.previous)
    for name in ("verified_at", "destination_changed_at"):
        if previous[name]:
            previous[name] = datetime.fromisoformat(previous[name])
    before = _snapshot(method)
    for name in RESTORED_FIELDS:
        setattr(method, name, previous[name])
    method.updated_at = timezone.now()
    method.save()
    PayoutMethodChange.objects.filter(pk=change.pk).update(undone_at=timezone.now())
    audit_record(
        actor=method.creator.user,
        action="payout_method_undo",
        obj=method,
        before={k: v for k, v in before.items() if k != "iban"},
        after={k: v for k, v in _snapshot(method).items() if k != "iban"},
        request=request,
    )
    return method
