"""Creators: becoming one, and moving matured earnings from pending to available."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from config.errors import DomainError, InvalidInput
from creators.models import RESERVED_HANDLES, Creator, LiveSession
from wallets.models import Account, AccountKind, Entry, TransactionKind
from wallets.services import Posting, account_balance, account_get, ledger_post

log = logging.getLogger(__name__)

HANDLE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{1,28}[a-z0-9])$")


class HandleTaken(DomainError):
    code = "handle_taken"
    status = 409
    default_message = "That handle is taken."


class AlreadyCreator(DomainError):
    code = "already_creator"
    status = 409
    default_message = "You are already a creator."


def _clean_handle(handle: str) -> str:
    handle = (handle or "").strip().lower()
    if not HANDLE_RE.match(handle):
        raise InvalidInput(
            "A handle is 3 to 30 lowercase letters, digits, '-' or '_'.",
            fields={
                "handle": ["3-30 characters: a-z, 0-9, '-' or '_'; no '-' or '_' at the ends."]
            },
        )
    if handle in RESERVED_HANDLES:
        raise HandleTaken(fields={"handle": ["That handle is reserved."]})
    return handle


@transaction.atomic
def creator_create(*, user, handle: str, display_name: str, bio: str = "") -> Creator:
    """Make ``user`` a creator with a unique handle and their diamond accounts.

    Anyone may set up a profile; receiving gifts needs an adult (checked per gift).
    """
    handle = _clean_handle(handle)
    display_name = " ".join((display_name or "").split())
    if not display_name or len(display_name) > 80:
        raise InvalidInput(
            "A display name is 1 to 80 characters.",
            fields={"display_name": ["1 to 80 characters."]},
        )
    if Creator.objects.filter(user=user).exists():
        raise AlreadyCreator()
    if Creator.objects.filter(handle__iexact=handle).exists():
        raise HandleTaken(fields={"handle": ["That handle is taken."]})
    pending = account_get(kind=AccountKind.DIAMONDS_PENDING, user=user)
    account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=user)
    try:
        with transaction.atomic():
            return Creator.objects.create(
                user=user,
                handle=handle,
                display_name=display_name,
                bio=(bio or "")[:300],
                pending_account=pending,
            )
    except IntegrityError:
        if Creator.objects.filter(user=user).exists():
            raise AlreadyCreator()
        raise HandleTaken(fields={"handle": ["That handle is taken."]})


# --- Holds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseResult:
    creator_id: int
    diamonds: int
    released_until: datetime | None


def _release_one(*, creator_id: int, now: datetime) -> ReleaseResult:
    cutoff = now - timedelta(days=settings.EARNINGS_HOLD_DAYS)
    creator = Creator.objects.get(pk=creator_id)
    if creator.pending_account_id is None:
        return ReleaseResult(creator_id, 0, creator.released_until)
    # The pending account's row lock serialises releases, payouts and rollups of this creator
    # (never gifts: they only append). Read the watermark again once we hold it.
    pending = Account.objects.select_for_update().get(pk=creator.pending_account_id)
    creator = Creator.objects.get(pk=creator_id)
    watermark = creator.released_until
    if watermark is not None and watermark >= cutoff:
        return ReleaseResult(creator_id, 0, watermark)
    # Every credit to pending (gifts, reversed clawbacks) matures the same way.
    credits = Entry.objects.filter(account_id=pending.pk, amount__gt=0, created_at__lt=cutoff)
    if watermark is not None:
        credits = credits.filter(created_at__gte=watermark)
    matured = credits.aggregate(total=Sum("amount"))["total"] or 0
    # Clawbacks may have taken diamonds out of pending: never release more than is there.
    diamonds = min(matured, account_balance(pending))
    if diamonds > 0:
        available = account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=creator.user)
        ledger_post(
            kind=TransactionKind.RELEASE,
            idempotency_key=f"release:{creator.pk}:{cutoff.isoformat()}",
            postings=[Posting(pending, -diamonds), Posting(available, diamonds)],
            memo=f"Earnings credited before {cutoff:%Y-%m-%d %H:%M} UTC",
            reference=f"creator:{creator.pk}",
        )
    Creator.objects.filter(pk=creator.pk).update(released_until=cutoff)
    return ReleaseResult(creator_id, diamonds, cutoff)


def earnings_release(*, creator: Creator | None = None, now: datetime | None = None) -> list:
    """Move pending diamonds credited more than ``EARNINGS_HOLD_DAYS`` ago to available.

    One transaction per creator. Idempotent (the watermark only moves forward and the ledger
    key names it) and safe beside itself (the pending account's row lock).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.EARNINGS_HOLD_DAYS)
    if creator is not None:
        ids = [creator.pk]
    else:
        ids = list(
            Creator.objects.filter(pending_account__isnull=False)
            .exclude(released_until__gte=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    results = []
    for creator_id in ids:
        with transaction.atomic():
            results.append(_release_one(creator_id=creator_id, now=now))
    return results


# --- Going live -----------------------------------------------------------------------------


def _new_live_id(now: datetime) -> str:
    # Matches gifts' CONTEXT_ID_RE; readable in the overlay URL, unique per creator.
    return f"live-{now:%Y%m%d-%H%M}-{secrets.token_hex(3)}"


@transaction.atomic
def creator_live_start(*, creator: Creator, now: datetime | None = None) -> LiveSession:
    """Open a live session, or return the one already open (a second click, or two at once).

    A session left open longer than ``LIVE_MAX_HOURS`` (a forgotten switch) is ended first.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(hours=settings.LIVE_MAX_HOURS)
    LiveSession.objects.filter(
        creator=creator, ended_at__isnull=True, started_at__lt=stale_before
    ).update(ended_at=now)
    open_session = LiveSession.objects.filter(creator=creator, ended_at__isnull=True).first()
    if open_session is not None:
        return open_session
    try:
        with transaction.atomic():
            return LiveSession.objects.create(
                creator=creator, live_id=_new_live_id(now), started_at=now
            )
    except IntegrityError:
        # Another request opened one between our read and our insert: theirs stands.
        return LiveSession.objects.get(creator=creator, ended_at__isnull=True)


@transaction.atomic
def creator_live_end(*, creator: Creator, now: datetime | None = None) -> LiveSession | None:
    """End the open live session, if any; ending twice is harmless."""
    now = now or timezone.now()
    session = (
        LiveSession.objects.select_for_update()
        .filter(creator=creator, ended_at__isnull=True)
        .first()
    )
    if session is None:
        return None
    session.ended_at = max(now, session.started_at)
    session.save(update_fields=["ended_at"])
    return session
