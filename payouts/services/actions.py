"""Staff actions on one payout: approve, cancel, mark paid or failed, retry. Staff may never
act on their own payouts."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record, refuse_own_account
from accounts.client_address import ClientRequest
from config.errors import InvalidInput
from payouts import rails
from payouts.models import Payout, PayoutEvent, PayoutMethod, PayoutStatus, Rail, TaxFormStatus
from payouts.services.errors import PayoutStateError
from payouts.services.transitions import _enqueue_send, _record_paid, _return_diamonds, _transition

if TYPE_CHECKING:
    from accounts.models import User

_Service = TypeVar("_Service", bound=Callable[..., Payout])


def _refuses_own_payout(action: str) -> Callable[[_Service], _Service]:
    """Staff may not act on their own payouts: refused (and audited) before the action's
    transaction opens, so the refusal's audit row stays although the action changes nothing."""

    def decorate(service: _Service) -> _Service:
        @wraps(service)
        def guarded(
            *,
            payout: Payout,
            actor: User | None,
            request: ClientRequest | None = None,
            **kwargs: Any,
        ) -> Payout:
            refuse_own_account(
                actor=actor, owner=payout.creator.user, action=action, obj=payout, request=request
            )
            return service(payout=payout, actor=actor, request=request, **kwargs)

        return cast("_Service", guarded)  # the service's own signature, checked first

    return decorate


def _audit(
    *,
    action: str,
    payout: Payout,
    before: str,
    actor: User | None,
    request: ClientRequest | None,
    reason: str = "",
) -> None:
    """The action's audit row, in its transaction (the admin, the API and a command alike)."""
    audit_record(
        actor=actor,
        action=action,
        obj=payout,
        before={"status": before},
        after={"status": payout.status},
        reason=reason,
        request=request,
    )


@_refuses_own_payout("payout_approve")
@transaction.atomic
def payout_approve(*, payout: Payout, actor: User, request: ClientRequest | None = None) -> Payout:
    before = payout.status
    method = PayoutMethod.objects.filter(creator_id=payout.creator_id).first()
    if "tax form" in payout.hold_reason and (
        method is None or method.tax_form_status == TaxFormStatus.MISSING
    ):
        raise PayoutStateError("Record the creator's tax form before approving this payout.")
    payout = _transition(
        payout,
        to=PayoutStatus.REQUESTED,
        allowed_from=[PayoutStatus.AWAITING_APPROVAL],
        actor=actor,
        note="approved",
        approved_at=timezone.now(),
        approved_by=actor,
    )
    _audit(action="payout_approve", payout=payout, before=before, actor=actor, request=request)
    _enqueue_send([payout.pk])
    return payout


@_refuses_own_payout("payout_cancel")
@transaction.atomic
def payout_cancel(
    *, payout: Payout, actor: User, reason: str, request: ClientRequest | None = None
) -> Payout:
    """Cancel a payout that has not gone to the rail yet; its diamonds return to available."""
    given = reason
    reason = (reason or "").strip() or "Cancelled by staff"
    before = payout.status
    payout = _return_diamonds(
        payout,
        to=PayoutStatus.CANCELLED,
        allowed_from=[PayoutStatus.REQUESTED, PayoutStatus.AWAITING_APPROVAL],
        actor=actor,
        code="cancelled",
        reason=reason,
    )
    _audit(
        action="payout_cancel",
        payout=payout,
        before=before,
        actor=actor,
        request=request,
        reason=given or "",
    )
    return payout


@_refuses_own_payout("payout_mark_paid")
@transaction.atomic
def payout_mark_paid(
    *,
    payout: Payout,
    actor: User | None,
    reference: str = "",
    request: ClientRequest | None = None,
) -> Payout:
    """Staff confirm a manual (bank run) payout went out."""
    if payout.rail != Rail.MANUAL:
        raise PayoutStateError("Stripe payouts are marked paid by the rail or reconciliation.")
    before = payout.status
    payout = _record_paid(payout, actor=actor, reference=reference, note="marked paid by staff")
    _audit(action="payout_mark_paid", payout=payout, before=before, actor=actor, request=request)
    return payout


@_refuses_own_payout("payout_mark_failed")
def payout_mark_failed(
    *, payout: Payout, actor: User, reason: str, request: ClientRequest | None = None
) -> Payout:
    """Staff record that a payout did not arrive; the diamonds return to available.

    For Stripe, only when the rail has no transfer for it: otherwise it was paid.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    if payout.rail == Rail.STRIPE and rails.transfer_find(payout_id=payout.pk) is not None:
        raise PayoutStateError("Stripe has a transfer for this payout: it was paid.")
    before = payout.status
    with transaction.atomic():
        payout = _return_diamonds(
            payout,
            to=PayoutStatus.FAILED,
            allowed_from=[PayoutStatus.REQUESTED, PayoutStatus.PROCESSING],
            actor=actor,
            code="staff",
            reason=reason,
        )
        _audit(
            action="payout_mark_failed",
            payout=payout,
            before=before,
            actor=actor,
            request=request,
            reason=reason,
        )
    return payout


@_refuses_own_payout("payout_retry")
@transaction.atomic
def payout_retry(*, payout: Payout, actor: User, request: ClientRequest | None = None) -> Payout:
    """Send a stuck payout again (same idempotency key: it cannot be paid twice)."""
    if payout.status not in (PayoutStatus.REQUESTED, PayoutStatus.PROCESSING):
        raise PayoutStateError(f"Payout #{payout.pk} is {payout.status}; nothing to retry.")
    PayoutEvent.objects.create(
        payout=payout, from_status=payout.status, to_status=payout.status, actor=actor, note="retry"
    )
    _audit(action="payout_retry", payout=payout, before=payout.status, actor=actor, request=request)
    _enqueue_send([payout.pk])
    return payout
