"""Everything the staff console writes: the audit log, wallet actions, maker-checker
adjustments. Each action checks the role, calls the owning app's service and audits."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import Abs
from django.utils import timezone

from accounts.audit import refuse_own_account
from accounts.client_address import client_address
from config.errors import InvalidInput
from staff.models import AdjustmentRequest, AdjustmentStatus, AuditLog
from staff.permissions import FINANCE, SUPPORT, has_role, require_role
from wallets import services as wallet_services
from wallets.models import Account, RechargeRefund

TRANSACTION_BAN_PREFIX = "Transaction ban: "


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    # Money, Decimal, datetimes, UUIDs: whatever Django can say as JSON, stored as plain JSON.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def audit_record(
    *,
    actor,
    action: str,
    obj=None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    request=None,
) -> AuditLog:
    """Append one audit row. Call it inside the action's transaction so both commit together."""
    object_type = object_id = object_repr = ""
    if obj is not None:
        object_type = obj._meta.label_lower
        object_id = str(obj.pk)
        object_repr = str(obj)[:200]
    return AuditLog.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action[:64],
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        before=_jsonable(before),
        after=_jsonable(after),
        reason=reason or "",
        ip=client_address(request),
    )


def _required_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    return reason


def _wallet_state(wallet: Account) -> dict:
    return {
        "balance": wallet.balance,
        "is_frozen": wallet.is_frozen,
        "reason": wallet.frozen_reason,
    }


# --- Freeze / unfreeze / transaction ban ----------------------------------------------------


def staff_wallet_freeze(*, actor, user, reason: str, ban: bool = False, request=None) -> Account:
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


@transaction.atomic
def _freeze(*, actor, user, reason: str, ban: bool, request) -> Account:
    wallet = Account.objects.select_for_update().get(pk=wallet_services.wallet_get(user=user).pk)
    before = _wallet_state(wallet)
    stored = (TRANSACTION_BAN_PREFIX + reason) if ban else reason
    wallet = wallet_services.wallet_freeze(user=user, reason=stored, actor=actor)
    audit_record(
        actor=actor,
        action="wallet_ban" if ban else "wallet_freeze",
        obj=wallet,
        before=before,
        after=_wallet_state(wallet),
        reason=reason,
        request=request,
    )
    return wallet


def staff_wallet_unfreeze(*, actor, user, reason: str, request=None) -> Account:
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
def _unfreeze(*, actor, user, reason: str, request) -> Account:
    wallet = Account.objects.select_for_update().get(pk=wallet_services.wallet_get(user=user).pk)
    if wallet.frozen_reason.startswith(TRANSACTION_BAN_PREFIX):
        require_role(actor, FINANCE)
    before = _wallet_state(wallet)
    wallet = wallet_services.wallet_unfreeze(user=user, actor=actor)
    audit_record(
        actor=actor,
        action="wallet_unfreeze",
        obj=wallet,
        before=before,
        after=_wallet_state(wallet),
        reason=reason,
        request=request,
    )
    return wallet


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


def adjustment_window_totals(*, actor, user) -> tuple[int, int]:
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
    *, actor, user, coins: int, reason: str, idempotency_key: str, request=None
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
def _adjust(*, actor, user, coins: int, reason: str, idempotency_key: str, request):
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
    wallet = wallet_services.wallet_get(user=user)
    before = {"balance": wallet.balance}
    journal = wallet_services.wallet_adjust(
        user=user, coins=coins, reason=reason, actor=actor, idempotency_key=request_key
    )
    adjustment = AdjustmentRequest.objects.create(
        user=user,
        coins=coins,
        reason=reason,
        requested_by=actor,
        request_key=request_key,
        status=AdjustmentStatus.POSTED,
        transaction=journal,
    )
    wallet.refresh_from_db()
    audit_record(
        actor=actor,
        action="wallet_credit" if coins > 0 else "wallet_debit",
        obj=wallet,
        before=before,
        after={
            "balance": wallet.balance,
            "coins": coins,
            "transaction": journal.pk,
            "adjustment": adjustment.pk,
        },
        reason=reason,
        request=request,
    )
    return adjustment


def _lock_pending(adjustment: AdjustmentRequest) -> AdjustmentRequest:
    locked = AdjustmentRequest.objects.select_for_update().get(pk=adjustment.pk)
    if locked.status != AdjustmentStatus.PENDING:
        raise InvalidInput(f"This request is already {locked.get_status_display().lower()}.")
    return locked


def adjustment_request_approve(
    *, actor, adjustment: AdjustmentRequest, note: str = "", request=None
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
def _approve(*, actor, adjustment: AdjustmentRequest, note: str, request) -> AdjustmentRequest:
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
    *, actor, adjustment: AdjustmentRequest, note: str, request=None
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
def _reject(*, actor, adjustment: AdjustmentRequest, note: str, request) -> AdjustmentRequest:
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


# --- Refunds: support's limit, spent coins need finance ------------------------------------


def staff_recharge_refund(
    *,
    actor,
    recharge,
    reason: str,
    coins: int | None = None,
    idempotency_key: str | None = None,
    request=None,
):
    """See ``_staff_recharge_refund``. Staff never refund their own purchases: refused and
    audited here, before the refund's transaction, so the refusal's audit row stays."""
    require_role(actor, (SUPPORT, FINANCE))
    refuse_own_account(
        actor=actor, owner=recharge.user, action="recharge_refund", obj=recharge, request=request
    )
    return _staff_recharge_refund(
        actor=actor,
        recharge=recharge,
        reason=reason,
        coins=coins,
        idempotency_key=idempotency_key,
        request=request,
    )


@transaction.atomic
def _staff_recharge_refund(
    *,
    actor,
    recharge,
    reason: str,
    coins: int | None = None,
    idempotency_key: str | None = None,
    request=None,
):
    """A staff refund through Stripe, with clawback, audited.

    Finance may refund anything. Support may refund up to ``SUPPORT_REFUND_LIMIT_COINS``
    coins, counted cumulatively per recharge and per member over a rolling 24 h, and only
    coins the viewer still holds: a refund that would put the viewer into coin debt (and claw
    back the creators they gifted) needs finance. Both limits are checked under the locks of
    ``wallets.services.recharge_refund`` (race-safe)."""
    require_role(actor, (SUPPORT, FINANCE))
    reason = _required_reason(reason)
    is_finance = has_role(actor, FINANCE)
    if idempotency_key:
        done = RechargeRefund.objects.filter(request_key=idempotency_key).first()
        if done is not None:
            return done  # a double submit: refunded and audited once
    before = {"status": recharge.status, "coins_refunded": recharge.coins_refunded}
    refund = wallet_services.recharge_refund(
        recharge=recharge,
        reason=reason,
        coins=coins,
        actor=actor,
        idempotency_key=idempotency_key,
        support_limit=None if is_finance else int(settings.SUPPORT_REFUND_LIMIT_COINS),
        allow_debt=is_finance,
    )
    recharge.refresh_from_db()
    audit_record(
        actor=actor,
        action="recharge_refund",
        obj=recharge,
        before=before,
        after={
            "status": recharge.status,
            "coins_refunded": recharge.coins_refunded,
            "refund": refund.pk,
            "amount": str(refund.amount),
            "coins_to_debt": refund.coins_to_debt,
        },
        reason=reason,
        request=request,
    )
    return refund


def admin_sign_in_notify(*, user, request) -> None:
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
