"""Creators: becoming one, and moving matured earnings from pending to available."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.audit import audit_record, refuse_own_account
from accounts.roles import FINANCE, require_role
from config.errors import DomainError, InvalidInput
from creators.models import RESERVED_HANDLES, Creator, LiveSession
from wallets.models import Account, AccountKind, Entry, TransactionKind
from wallets.services import Posting, account_balance, account_get, ledger_post
from wallets.services.bulk import (
    Move,
    accounts_lock,
    bulk_supported,
    chunks_in_parallel,
    ledger_move_bulk,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import User


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
def creator_create(*, user: User, handle: str, display_name: str, bio: str = "") -> Creator:
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
    # (never gifts: they only append, and FOR NO KEY UPDATE leaves their foreign-key checks
    # alone). Read the watermark again once we hold it.
    pending = Account.objects.select_for_update(no_key=True).get(pk=creator.pending_account_id)
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


def earnings_release(
    *, creator: Creator | None = None, now: datetime | None = None
) -> list[ReleaseResult]:
    """Move pending diamonds credited more than ``EARNINGS_HOLD_DAYS`` ago to available.

    Idempotent (the watermark only moves forward and the ledger key names it) and safe beside
    itself (the pending account's row lock). On PostgreSQL, set-based: ``EARNINGS_RELEASE_CHUNK``
    creators per transaction (``_release_chunk``), ``EARNINGS_RELEASE_WORKERS`` chunks at once
    (disjoint creators: they never wait on each other); elsewhere (SQLite), one transaction per
    creator. A kill keeps the chunks committed before it; a rerun continues with the rest.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.EARNINGS_HOLD_DAYS)
    if creator is not None:
        with transaction.atomic():
            return [_release_one(creator_id=creator.pk, now=now)]
    due = (
        Creator.objects.filter(pending_account__isnull=False)
        .exclude(released_until__gte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    results: list[ReleaseResult] = []
    if not bulk_supported():
        for creator_id in list(due):
            with transaction.atomic():
                results.append(_release_one(creator_id=creator_id, now=now))
        return results

    def one_chunk(ids: list[int]) -> list[ReleaseResult]:
        with transaction.atomic():
            return _release_chunk(creator_ids=ids, cutoff=cutoff)

    for _ids, released in chunks_in_parallel(
        next_chunk=lambda after: list(due.filter(pk__gt=after)[: settings.EARNINGS_RELEASE_CHUNK]),
        work=one_chunk,
        workers=settings.EARNINGS_RELEASE_WORKERS,
    ):
        results += released
    return results


def earnings_release_by_staff(
    *, creator: Creator, actor: User, request: HttpRequest | None = None
) -> ReleaseResult:
    """Finance releases one creator's matured earnings now, instead of waiting for the hourly
    run. Staff never release their own (refused and audited before the transaction, so the
    refusal's row stays); the release is audited (``earnings_release``) in its transaction."""
    require_role(actor, FINANCE)
    refuse_own_account(
        actor=actor, owner=creator.user, action="earnings_release", obj=creator, request=request
    )
    with transaction.atomic():
        result = _release_one(creator_id=creator.pk, now=timezone.now())
        audit_record(
            actor=actor,
            action="earnings_release",
            obj=creator,
            after={"diamonds_released": result.diamonds},
            request=request,
        )
    return result


def _release_chunk(*, creator_ids: list[int], cutoff: datetime) -> list[ReleaseResult]:
    """Release one chunk of creators set-based (inside the chunk's transaction).

    The pending and available accounts are locked in id order ``FOR NO KEY UPDATE``: a gift's
    foreign-key check on the pending row (``FOR KEY SHARE``) does not wait for it, and neither
    does a gift event's check on the creator row when the watermark moves.
    """
    pending_kind = AccountKind.DIAMONDS_PENDING.value
    available_kind = AccountKind.DIAMONDS_AVAILABLE.value
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.pending_account_id FROM creators_creator c WHERE c.id = ANY(%s) "
            "AND c.pending_account_id IS NOT NULL UNION ALL "
            "SELECT a.id FROM creators_creator c JOIN wallets_account a "
            "ON a.user_id = c.user_id AND a.kind = %s WHERE c.id = ANY(%s)",
            [creator_ids, available_kind, creator_ids],
        )
        accounts_lock(account_ids=[row[0] for row in cursor.fetchall()])
        # Under the locks: the watermark, what matured since it, and the live pending balance.
        cursor.execute(
            """
            SELECT c.id, c.pending_account_id, av.id, c.released_until,
                   (SELECT COALESCE(SUM(e.amount), 0) FROM wallets_entry e
                    WHERE e.account_id = pa.id AND e.amount > 0 AND e.created_at < %(cutoff)s
                      AND (c.released_until IS NULL OR e.created_at >= c.released_until)),
                   pa.balance + (SELECT COALESCE(SUM(e.amount), 0) FROM wallets_entry e
                    WHERE e.account_id = pa.id
                      AND (pa.checkpoint_at IS NULL OR e.created_at >= pa.checkpoint_at))
            FROM creators_creator c
            JOIN wallets_account pa ON pa.id = c.pending_account_id AND pa.kind = %(pending)s
            LEFT JOIN wallets_account av ON av.user_id = c.user_id AND av.kind = %(available)s
            WHERE c.id = ANY(%(ids)s)
              AND (c.released_until IS NULL OR c.released_until < %(cutoff)s)
            ORDER BY c.id
            """,
            {
                "cutoff": cutoff,
                "pending": pending_kind,
                "available": available_kind,
                "ids": creator_ids,
            },
        )
        rows = cursor.fetchall()
    moves, results = [], []
    for creator_id, pending_id, available_id, _watermark, matured, balance in rows:
        # Clawbacks may have taken diamonds out of pending: never release more than is there.
        diamonds = max(0, min(matured, balance))
        if diamonds and available_id is None:
            creator = Creator.objects.select_related("user").get(pk=creator_id)
            available_id = account_get(kind=available_kind, user=creator.user).pk
        if diamonds:
            moves.append(
                Move(
                    idempotency_key=f"release:{creator_id}:{cutoff.isoformat()}",
                    debit=pending_id,
                    credit=available_id,
                    amount=diamonds,
                    memo=f"Earnings credited before {cutoff:%Y-%m-%d %H:%M} UTC",
                    reference=f"creator:{creator_id}",
                )
            )
        results.append(ReleaseResult(creator_id, diamonds, cutoff))
    ledger_move_bulk(kind=TransactionKind.RELEASE, moves=moves)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE creators_creator SET released_until = %s WHERE id = ANY(%s) "
            "AND (released_until IS NULL OR released_until < %s)",
            [cutoff, [r.creator_id for r in results], cutoff],
        )
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
