"""Everything the staff console writes: the audit log, wallet actions, maker-checker
adjustments. Each action checks the role, calls the owning app's service and audits."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import Abs
from django.utils import timezone

from accounts.audit import audit_record, refuse_own_account
from accounts.client_address import client_address
from config.errors import InvalidInput
from staff.models import AdjustmentRequest, AdjustmentStatus
from staff.permissions import FINANCE, SUPPORT, require_role
from wallets import services as wallet_services
from wallets.models import Account
from wallets.services.ledger import TRANSACTION_BAN_PREFIX

if TYPE_CHECKING:
    from accounts.models import User


def _required_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    return reason


# --- Freeze / unfreeze / transaction ban ----------------------------------------------------


def staff_wallet_freeze(
    *, actor: User, user: User, reason: str, ban: bool = False, request=None
) -> Account:
    """Freeze a wallet (support or finance). A *transaction ban* is a freeze that only finance
    can lift: for fraud and abuse rather than a question to clear up."""
    require_role(actor, (SUPPORT, FINANCE))
    reason = _required_reason(reason)
    refuse_own_account(
        actor=actor,
        owner=user,
        action="wallet_ban" if ban else "wallet_freeze",
        obj=wallet_services.wallet_get(user=user),
        request=request,
    )
    return _freeze(actor=actor, user=user, reason=reason, ban=ban, request=request)


def _freeze(*, actor: User, user: User, reason: str, ban: bool, request) -> Account:
    return wallet_services.wallet_freeze(
        user=user, reason=reason, actor=actor, ban=ban, request=request
    )


def staff_wallet_unfreeze(*, actor: User, user: User, reason: str, request=None) -> Account:
    require_role(actor, (SUPPORT, FINANCE))
    reason = _required_reason(reason)
    refuse_own_account(
        actor=actor,
        owner=user,
        action="wallet_unfreeze",
        obj=wallet_services.wallet_get(user=user),
        request=request,
    )
    return _unfreeze(actor=actor, user=user, reason=reason, request=request)


@transaction.atomic
def _unfreeze(*, actor: User, user: User, reason: str, request) -> Account:
    wallet = Account.objects.select_for_update().get(pk=wallet_services.wallet_get(user=user).pk)
    if wallet.frozen_reason.startswith(TRANSACTION_BAN_PREFIX):
        require_role(actor, FINANCE)
    return wallet_services.wallet_unfreeze(user=user, actor=actor, reason=reason, request=request)


# --- Adjustments (maker-checker) ------------------------------------------------------------


def approval_threshold() -> int:
    return int(getattr(settings, "ADJUSTMENT_APPROVAL_ABOVE", 10_000))


ADJUSTMENT_WINDOW = timedelta(hours=24)
# grant_coins without --by: an operator at the console, one "actor" for the rolling total.
CONSOLE = "console"


def _xact_locks(*names: str) -> None:
    """Transaction-scoped PostgreSQL advisory locks, taken in one global (sorted) order so two
    adjustments that share an actor or a wallet queue instead of deadlocking. SQLite has one
    writer at a time (immediate transactions) and needs none."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name in sorted(names):
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def adjustment_window_totals(*, actor: User | None, user: User) -> tuple[int, int]:
    """Coins (credits and debits alike, |coins|) posted without a second approver in the last
    24 hours: by this actor (or the console), and to this wallet by anyone."""
    posted = AdjustmentRequest.objects.filter(
        status=AdjustmentStatus.POSTED, requested_at__gte=timezone.now() - ADJUSTMENT_WINDOW
    )
    by_actor = (
        posted.filter(requested_by=actor)
        if actor is not None
        else posted.filter(requested_by__isnull=True)
    )

    def total(rows) -> int:
        return int(rows.aggregate(total=Sum(Abs("coins")))["total"] or 0)

    return total(by_actor), total(posted.filter(user=user))


def staff_wallet_adjust(
    *, actor: User | None, user: User, coins: int, reason: str, idempotency_key: str, request=None
) -> AdjustmentRequest:
    """Credit (coins > 0) or debit (coins < 0) a wallet with a reason (finance only).

    Four-eyes that cannot be sliced: when this adjustment would take the actor's, or the
    wallet's, total of coins moved (credits and debits alike) without a second approver over
    ``ADJUSTMENT_APPROVAL_ABOVE`` in the last 24 hours, it is not posted: it becomes a pending
    ``AdjustmentRequest`` for a different finance user. Otherwise it posts at once and is kept
    as a ``posted`` request (that is what the rolling totals add up). Two concurrent
    adjustments by one actor or to one wallet queue on advisory locks, so they cannot both
    pass under the limit. ``actor`` None is an operator at the console (``grant_coins``
    without ``--by``): one actor for the totals, and any finance user may approve.

    Staff may not adjust their own wallet (refused and audited). ``idempotency_key`` comes from
    the form (or the command), so a double submit posts or requests once.
    """
    if actor is not None:
        require_role(actor, FINANCE)
    reason = _required_reason(reason)
    if isinstance(coins, bool) or not isinstance(coins, int) or coins == 0:
        raise InvalidInput(
            "Coins must be a non-zero whole number.", fields={"coins": ["Non-zero."]}
        )
    if abs(coins) > 10**12:
        raise InvalidInput("That amount is too large.", fields={"coins": ["Too large."]})
    refuse_own_account(
        actor=actor,
        owner=user,
        action="wallet_credit" if coins > 0 else "wallet_debit",
        obj=wallet_services.wallet_get(user=user),
        request=request,
    )
    return _adjust(
        actor=actor,
        user=user,
        coins=coins,
        reason=reason,
        idempotency_key=idempotency_key,
        request=request,
    )


@transaction.atomic
def _adjust(
    *, actor: User | None, user: User, coins: int, reason: str, idempotency_key: str, request
):
    _xact_locks(
        f"staff-adjust:actor:{actor.pk if actor is not None else CONSOLE}",
        f"staff-adjust:wallet:{user.pk}",
    )
    request_key = f"staff-adjust:{idempotency_key}"
    done = AdjustmentRequest.objects.filter(request_key=request_key).first()
    if done is not None:
        return done
    by_actor, to_wallet = adjustment_window_totals(actor=actor, user=user)
    limit = approval_threshold()
    if max(by_actor, to_wallet) + abs(coins) > limit:
        adjustment = AdjustmentRequest.objects.create(
            user=user, coins=coins, reason=reason, requested_by=actor, request_key=request_key
        )
        audit_record(
            actor=actor,
            action="adjustment_request",
            obj=adjustment,
            after={
                "user": user.pk,
                "coins": coins,
                "status": adjustment.status,
                "posted_24h_by_actor": by_actor,
                "posted_24h_to_wallet": to_wallet,
                "limit": limit,
            },
            reason=reason,
            request=request,
        )
        return adjustment
    # wallet_adjust writes the audit row (wallet_credit / wallet_debit) with the journal.
    journal = wallet_services.wallet_adjust(
        user=user,
        coins=coins,
        reason=reason,
        actor=actor,
        idempotency_key=request_key,
        request=request,
    )
    return AdjustmentRequest.objects.create(
        user=user,
        coins=coins,
        reason=reason,
        requested_by=actor,
        request_key=request_key,
        status=AdjustmentStatus.POSTED,
        transaction=journal,
    )


def _lock_pending(adjustment: AdjustmentRequest) -> AdjustmentRequest:
    locked = AdjustmentRequest.objects.select_for_update().get(pk=adjustment.pk)
    if locked.status != AdjustmentStatus.PENDING:
        raise InvalidInput(f"This request is already {locked.get_status_display().lower()}.")
    return locked


def adjustment_request_approve(
    *, actor: User, adjustment: AdjustmentRequest, note: str = "", request=None
) -> AdjustmentRequest:
    require_role(actor, FINANCE)
    refuse_own_account(
        actor=actor,
        owner=adjustment.user,
        action="adjustment_approve",
        obj=adjustment,
        request=request,
    )
    return _approve(actor=actor, adjustment=adjustment, note=note, request=request)


@transaction.atomic
def _approve(
    *, actor: User, adjustment: AdjustmentRequest, note: str, request
) -> AdjustmentRequest:
    adjustment = _lock_pending(adjustment)
    if adjustment.requested_by_id == actor.pk:
        raise PermissionDenied("A different finance user must approve this request.")
    journal = wallet_services.wallet_adjust(
        user=adjustment.user,
        coins=adjustment.coins,
        reason=f"{adjustment.reason} (requested by {adjustment.requested_by or CONSOLE}, "
        f"approved by {actor})",
        actor=actor,
        idempotency_key=adjustment.idempotency_key,
        request=request,
    )
    adjustment.status = AdjustmentStatus.APPROVED
    adjustment.decided_by = actor
    adjustment.decided_at = timezone.now()
    adjustment.decision_note = (note or "")[:500]
    adjustment.transaction = journal
    adjustment.save(
        update_fields=["status", "decided_by", "decided_at", "decision_note", "transaction"]
    )
    audit_record(
        actor=actor,
        action="adjustment_approve",
        obj=adjustment,
        before={"status": AdjustmentStatus.PENDING},
        after={"status": adjustment.status, "transaction": journal.pk, "coins": adjustment.coins},
        reason=note,
        request=request,
    )
    return adjustment


def adjustment_request_reject(
    *, actor: User, adjustment: AdjustmentRequest, note: str, request=None
) -> AdjustmentRequest:
    require_role(actor, FINANCE)
    note = _required_reason(note)
    refuse_own_account(
        actor=actor,
        owner=adjustment.user,
        action="adjustment_reject",
        obj=adjustment,
        request=request,
    )
    return _reject(actor=actor, adjustment=adjustment, note=note, request=request)


@transaction.atomic
def _reject(*, actor: User, adjustment: AdjustmentRequest, note: str, request) -> AdjustmentRequest:
    adjustment = _lock_pending(adjustment)
    if adjustment.requested_by_id == actor.pk:
        raise PermissionDenied("A different finance user must decide on this request.")
    adjustment.status = AdjustmentStatus.REJECTED
    adjustment.decided_by = actor
    adjustment.decided_at = timezone.now()
    adjustment.decision_note = note[:500]
    adjustment.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(
        actor=actor,
        action="adjustment_reject",
        obj=adjustment,
        before={"status": AdjustmentStatus.PENDING},
        after={"status": adjustment.status},
        reason=note,
        request=request,
    )
    return adjustment


def admin_sign_in_notify(*, user: User, request) -> None:
    """A security email for every admin sign-in (one per session), even to an unverified
    address: a stolen staff password plus codes must not go unnoticed."""
    from notifications.models import EmailCategory
    from notifications.services import email_enqueue

    if not request.session.session_key:
        request.session.save()
    email_enqueue(
        event=f"admin_sign_in:{request.session.session_key}",
        user=user,
        template="admin_sign_in",
        category=EmailCategory.SECURITY,
        context={
            "when": timezone.now(),
            "ip": client_address(request) or "unknown",
            "user_agent": (request.META.get("HTTP_USER_AGENT") or "unknown")[:200],
        },
    )
