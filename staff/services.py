"""Everything the staff console writes: the audit log, wallet actions, maker-checker
adjustments. Each action checks the role, calls the owning app's service and audits."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from accounts.client_address import client_address
from config.errors import InvalidInput
from staff.models import AdjustmentRequest, AdjustmentStatus, AuditLog
from staff.permissions import FINANCE, SUPPORT, has_role, require_role
from wallets import services as wallet_services
from wallets.models import Account

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


@transaction.atomic
def staff_wallet_freeze(*, actor, user, reason: str, ban: bool = False, request=None) -> Account:
    """Freeze a wallet (support or finance). A *transaction ban* is a freeze that only finance
    can lift: for fraud and abuse rather than a question to clear up."""
    require_role(actor, (SUPPORT, FINANCE))
    reason = _required_reason(reason)
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


@transaction.atomic
def staff_wallet_unfreeze(*, actor, user, reason: str, request=None) -> Account:
    require_role(actor, (SUPPORT, FINANCE))
    reason = _required_reason(reason)
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


@transaction.atomic
def staff_wallet_adjust(
    *, actor, user, coins: int, reason: str, idempotency_key: str, request=None
) -> AdjustmentRequest | Any:
    """Credit (coins > 0) or debit (coins < 0) a wallet with a reason (finance only).

    A credit above ``ADJUSTMENT_APPROVAL_ABOVE`` is not posted: it becomes a pending
    ``AdjustmentRequest`` for a different finance user. Returns the request, or the ledger
    transaction when posted at once. ``idempotency_key`` comes from the form, so a double
    submit posts once.
    """
    require_role(actor, FINANCE)
    reason = _required_reason(reason)
    if isinstance(coins, bool) or not isinstance(coins, int) or coins == 0:
        raise InvalidInput(
            "Coins must be a non-zero whole number.", fields={"coins": ["Non-zero."]}
        )
    wallet = wallet_services.wallet_get(user=user)
    if coins > approval_threshold():
        adjustment = AdjustmentRequest.objects.create(
            user=user, coins=coins, reason=reason, requested_by=actor
        )
        audit_record(
            actor=actor,
            action="adjustment_request",
            obj=adjustment,
            after={"user": user.pk, "coins": coins, "status": adjustment.status},
            reason=reason,
            request=request,
        )
        return adjustment
    before = {"balance": wallet.balance}
    journal = wallet_services.wallet_adjust(
        user=user,
        coins=coins,
        reason=reason,
        actor=actor,
        idempotency_key=f"staff-adjust:{idempotency_key}",
    )
    wallet.refresh_from_db()
    audit_record(
        actor=actor,
        action="wallet_credit" if coins > 0 else "wallet_debit",
        obj=wallet,
        before=before,
        after={"balance": wallet.balance, "coins": coins, "transaction": journal.pk},
        reason=reason,
        request=request,
    )
    return journal


def _lock_pending(adjustment: AdjustmentRequest) -> AdjustmentRequest:
    locked = AdjustmentRequest.objects.select_for_update().get(pk=adjustment.pk)
    if locked.status != AdjustmentStatus.PENDING:
        raise InvalidInput(f"This request is already {locked.get_status_display().lower()}.")
    return locked


@transaction.atomic
def adjustment_request_approve(
    *, actor, adjustment: AdjustmentRequest, note: str = "", request=None
) -> AdjustmentRequest:
    require_role(actor, FINANCE)
    adjustment = _lock_pending(adjustment)
    if adjustment.requested_by_id == actor.pk:
        raise PermissionDenied("A different finance user must approve this request.")
    journal = wallet_services.wallet_adjust(
        user=adjustment.user,
        coins=adjustment.coins,
        reason=f"{adjustment.reason} (requested by {adjustment.requested_by}, approved by {actor})",
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


@transaction.atomic
def adjustment_request_reject(
    *, actor, adjustment: AdjustmentRequest, note: str, request=None
) -> AdjustmentRequest:
    require_role(actor, FINANCE)
    note = _required_reason(note)
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


@transaction.atomic
def staff_recharge_refund(
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
