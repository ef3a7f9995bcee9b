"""Fair refunds: a viewer refunds an accidental recharge of unspent coins within 48 hours."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    ServiceBusy,
)
from wallets import stripe_gateway as gateway
from wallets.models import (
    AccountKind,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    RefundSource,
    RefundStatus,
    TransactionKind,
)
from wallets.services.ledger import (
    Posting,
    _ensure_not_frozen,
    ledger_post,
    platform_account,
    wallet_get,
)
from wallets.services.refunds import RefundNotAllowed
from wallets.services.stripe_calls import (
    _lock_wait,
    _provider_error,
    _recharge_lock,
    finish_each,
)

if TYPE_CHECKING:
    from accounts.models import User


log = logging.getLogger(__name__)

# The recovery points of a self refund (logged as ``self refund <id>: continuing from <phase>``).
PHASE_REQUESTED = "requested"  # committed, coins taken back; Stripe maybe asked
PHASE_FINISHED = "finished"  # Stripe's answer recorded; only the client's answer was lost

STRIPE_REFUSED_MESSAGE = (
    "The card payment could not be refunded here; your coins are back in your wallet. "
    "Please contact support."
)


class AlreadyRefunded(RefundNotAllowed):
    code = "already_refunded"
    default_message = "This recharge was already refunded."


class RefundWindowClosed(RefundNotAllowed):
    code = "refund_window_closed"
    default_message = "Purchases can only be refunded within 48 hours."


class CoinsAlreadySpent(RefundNotAllowed):
    code = "coins_already_spent"
    default_message = "Some of these coins were already spent, so this purchase cannot be refunded."


def self_refund_deadline(recharge: Recharge) -> datetime:
    paid_at = recharge.succeeded_at or recharge.created_at
    return paid_at + timedelta(hours=settings.SELF_REFUND_WINDOW_HOURS)


@dataclass(frozen=True)
class SelfRefundStatus:
    allowed: bool
    code: str  # "" when allowed
    message: str
    deadline: datetime | None


def self_refund_status(
    *, recharge: Recharge, wallet_coins: int, now: datetime | None = None
) -> SelfRefundStatus:
    """What the receipt page shows (the service decides again under its locks)."""
    now = now or timezone.now()
    deadline = self_refund_deadline(recharge)
    self_refunds = recharge.refunds.filter(source=RefundSource.SELF)
    if self_refunds.exclude(status=RefundStatus.FAILED).exists():
        return SelfRefundStatus(False, AlreadyRefunded.code, "You refunded this purchase.", None)
    if self_refunds.exists():
        return SelfRefundStatus(False, RefundNotAllowed.code, STRIPE_REFUSED_MESSAGE, None)
    if recharge.status != RechargeStatus.SUCCEEDED or recharge.coins_refunded:
        return SelfRefundStatus(False, RefundNotAllowed.code, "", None)
    if now >= deadline:
        return SelfRefundStatus(
            False, RefundWindowClosed.code, "The 48-hour refund window has closed.", deadline
        )
    if wallet_coins < recharge.coins:
        return SelfRefundStatus(
            False,
            CoinsAlreadySpent.code,
            "Some of these coins were already spent, so this purchase can no longer be "
            "refunded. Spent coins are not refundable.",
            deadline,
        )
    return SelfRefundStatus(True, "", "", deadline)


def _request_key(user_id: int, key: str) -> str:
    key = (key or "").strip()
    if not key:
        raise InvalidInput("An idempotency key is required.", fields={"key": ["Required."]})
    if len(key) > 200:
        key = "sha256-" + hashlib.sha256(key.encode()).hexdigest()
    return f"self:{user_id}:{key}"


def recharge_self_refund(
    *,
    user: User,
    recharge_id: int,
    request_key: str,
    request_hash: str | None = None,
    request_path: str = "",
) -> RechargeRefund:
    """Refund a whole recharge to the viewer's card and take its coins back, in atomic phases
    (Stripe's advice for idempotency keys, as ``recharge_create`` does). Never call it inside
    a transaction: Stripe is called between the phases.

    1. **requested** — one transaction checks the rules, takes the coins back (the ledger's
       conditional UPDATE: a gift that spends them first, or at the same moment, makes this
       refuse with ``coins_already_spent`` instead of creating debt) and commits the refund
       row, ``requested``, with the request's key (and, from the API, the idempotency record,
       unfinished: ``request_hash``).
    2. Outside any transaction, under the recharge's lock: Stripe's refund, created under the
       key ``applause-self-refund-r<refund id>`` (with the refund id in its metadata). A
       continued refund first looks for it at Stripe, so a lost answer is never refunded
       twice.
    3. A second transaction records the answer: ``succeeded`` (the recharge refunded).

    Allowed within ``SELF_REFUND_WINDOW_HOURS`` of the payment, once. The same
    ``request_key`` finds its refund and goes on from its recovery point; another key for
    the same recharge is ``already_refunded``. Stripe unreachable: 503
    ``payment_provider_unavailable`` (Retry-After), the refund stays ``requested`` (the coins
    stay taken back) and the retry, the finisher (``self_refunds_finish_abandoned``),
    reconciliation or the webhook finishes it. Stripe refusing it outright: the coins go back
    and the refund is ``failed`` (409 ``refund_not_allowed``).
    """
    key = _request_key(user.pk, request_key)
    refund, resumed = _self_refund_begin(
        user=user,
        recharge_id=recharge_id,
        key=key,
        client_key=request_key,
        request_hash=request_hash,
        request_path=request_path,
    )
    return _self_refund_continue(refund, resumed=resumed)


def _self_refund_begin(
    *,
    user: User,
    recharge_id: int,
    key: str,
    client_key: str,
    request_hash: str | None,
    request_path: str,
) -> tuple[RechargeRefund, bool]:
    """Phase 1: the checks, the coins taken back and the ``requested`` refund row (with the
    idempotency record), committed together. Returns the row and whether it was there
    already (a retry, or a copy of the request)."""
    from accounts.services import idempotency_claim

    with transaction.atomic():
        if request_hash:
            idempotency_claim(
                user=user, key=client_key, request_hash=request_hash, path=request_path
            )
        recharge = Recharge.objects.select_for_update().filter(pk=recharge_id, user=user).first()
        if recharge is None:
            raise NotFound("No such recharge.")
        mine = RechargeRefund.objects.filter(request_key=key).first()
        if mine is not None:
            if mine.recharge_id != recharge.pk:
                raise IdempotencyConflict()
            return mine, True
        # A self refund made before refunds had phases, whose answer was lost and which
        # reconciliation or the webhook booked from Stripe without a key: this request's.
        orphan = recharge.refunds.filter(source=RefundSource.SELF, request_key__isnull=True)
        found = orphan.exclude(status=RefundStatus.FAILED).first()
        if found is not None:
            RechargeRefund.objects.filter(pk=found.pk).update(request_key=key)
            found.request_key = key
            return found, True
        self_refunds = recharge.refunds.filter(source=RefundSource.SELF)
        if self_refunds.exclude(status=RefundStatus.FAILED).exists():
            raise AlreadyRefunded()
        if self_refunds.exists():
            raise RefundNotAllowed(STRIPE_REFUSED_MESSAGE)
        if recharge.status != RechargeStatus.SUCCEEDED or recharge.coins_refunded:
            raise RefundNotAllowed(
                "Only a paid purchase that was never refunded can be refunded here "
                f"(this one is {recharge.get_status_display().lower()})."
            )
        if timezone.now() >= self_refund_deadline(recharge):
            raise RefundWindowClosed(
                f"Purchases can only be refunded within {settings.SELF_REFUND_WINDOW_HOURS} hours."
            )
        if not recharge.payment_intent:  # a succeeded recharge always has one
            raise RefundNotAllowed("This purchase has no card payment to refund.")
        _ensure_not_frozen(wallet_get(user=user))
        self_refund_debit(recharge=recharge, user=user)
        refund = RechargeRefund.objects.create(  # type: ignore[misc]  # MoneyField takes Money
            recharge=recharge,
            stripe_id="",
            source=RefundSource.SELF,
            status=RefundStatus.REQUESTED,
            amount=recharge.price,
            coins=recharge.coins,
            coins_from_wallet=recharge.coins,
            reason="refunded by the viewer",
            actor=user,
            request_key=key,
        )
        return refund, False


def self_refund_phase(refund: RechargeRefund) -> str:
    """The recovery point a self refund is at."""
    return PHASE_REQUESTED if refund.status == RefundStatus.REQUESTED else PHASE_FINISHED


def _self_refund_continue(refund: RechargeRefund, *, resumed: bool) -> RechargeRefund:
    """Phases 2 and 3 from wherever the refund is, under the recharge's lock."""
    with _recharge_lock(refund.recharge_id, wait=_lock_wait()) as held:
        if not held:
            # A copy of this request is still talking to Stripe: ask the client to come back.
            raise ServiceBusy("This refund is still being processed; please try again.")
        refund = RechargeRefund.objects.select_related("recharge").get(pk=refund.pk)
        if resumed:
            log.warning("self refund %s: continuing from %s", refund.pk, self_refund_phase(refund))
        if refund.status == RefundStatus.REQUESTED:
            stripe_refund = _self_refund_at_stripe(refund, look_first=resumed)
            if stripe_refund is None:
                refund = self_refund_fail(refund=refund)
            else:
                refund = self_refund_complete(refund=refund, stripe_id=stripe_refund.id)
        if refund.status == RefundStatus.FAILED:
            raise RefundNotAllowed(STRIPE_REFUSED_MESSAGE)
        return refund


def _self_refund_at_stripe(refund: RechargeRefund, *, look_first: bool) -> gateway.Refund | None:
    """Phase 2: Stripe's refund for this row (found, if an earlier attempt made it, or made
    now); None when Stripe refuses to make it. Stripe unreachable raises
    ``PaymentProviderUnavailable``; any other failure ``PaymentProviderError`` (the refund
    stays ``requested`` either way)."""
    recharge = refund.recharge
    try:
        if look_first:
            found = _self_refund_find(refund)
            if found is not None:
                return found
        try:
            return gateway.refund_create(
                payment_intent_id=str(recharge.payment_intent),
                amount=refund.amount,
                idempotency_key=f"applause-self-refund-r{refund.pk}",
                metadata={
                    "recharge_id": str(recharge.pk),
                    "refund_id": str(refund.pk),
                    "coins": str(refund.coins),
                    "reason": SELF_REFUND_REASON,
                },
            )
        except gateway.StripeError as exc:
            if gateway.is_unavailable(exc) or getattr(exc, "http_status", None) not in (400, 402):
                raise
            log.warning("self refund %s refused by Stripe: %s", refund.pk, exc)
            # Made after all by an attempt whose answer we lost? Then it is ours.
            return _self_refund_find(refund)
    except gateway.StripeError as exc:
        raise _provider_error(exc, f"self refund {refund.pk}") from exc


def _self_refund_find(refund: RechargeRefund) -> gateway.Refund | None:
    """The Stripe refund an earlier attempt made for this row, if any."""
    for stripe_refund in gateway.refunds_for_payment_intent(str(refund.recharge.payment_intent)):
        if stripe_refund.metadata.get("refund_id") == str(refund.pk) and stripe_refund.status in (
            "succeeded",
            "pending",
        ):
            return stripe_refund
    return None


@transaction.atomic
def self_refund_complete(*, refund: RechargeRefund, stripe_id: str) -> RechargeRefund:
    """Phase 3: Stripe refunded it. The row becomes ``succeeded`` and the recharge refunded,
    once (a retry, the finisher, reconciliation and the webhook may all get here)."""
    recharge = Recharge.objects.select_for_update().get(pk=refund.recharge_id)
    done = RechargeRefund.objects.filter(pk=refund.pk, status=RefundStatus.REQUESTED).update(
        status=RefundStatus.SUCCEEDED, stripe_id=stripe_id
    )
    if done:
        recharge.coins_refunded = recharge.coins
        recharge.amount_refunded = recharge.price
        recharge.status = RechargeStatus.REFUNDED
        recharge.save(update_fields=["coins_refunded", "amount_refunded", "status", "updated_at"])
    return RechargeRefund.objects.get(pk=refund.pk)


@transaction.atomic
def self_refund_fail(*, refund: RechargeRefund) -> RechargeRefund:
    """Phase 3 when Stripe refused the refund outright (nothing was refunded): the coins go
    back to the wallet and the row is ``failed``, once."""
    recharge = Recharge.objects.select_for_update().get(pk=refund.recharge_id)
    done = RechargeRefund.objects.filter(pk=refund.pk, status=RefundStatus.REQUESTED).update(
        status=RefundStatus.FAILED
    )
    if done:
        ledger_post(
            kind=TransactionKind.REVERSAL,
            idempotency_key=f"refund-failed:self:{refund.pk}",
            postings=[
                Posting(platform_account(AccountKind.COIN_ISSUANCE), -refund.coins),
                Posting(wallet_get(user=recharge.user), refund.coins),
            ],
            actor=refund.actor,
            memo=f"Refund of recharge #{recharge.pk} refused by Stripe: "
            f"{refund.coins:,} coins back",
            reference=f"recharge:{recharge.pk}",
        )
    return RechargeRefund.objects.get(pk=refund.pk)


def self_refund_finish(*, refund_id: int) -> str:
    """Finish one ``requested`` self refund whose client never came back (phases 2 and 3
    without the client: the viewer asked for it and its coins are already taken back).
    Returns ``busy``, ``done``, ``succeeded`` or ``failed``; Stripe unreachable raises
    ``PaymentProviderUnavailable``."""
    refund = RechargeRefund.objects.filter(pk=refund_id).first()
    if refund is None:
        return "done"
    with _recharge_lock(refund.recharge_id, wait=0) as held:
        if not held:
            return "busy"
        refund = RechargeRefund.objects.select_related("recharge").get(pk=refund_id)
        if refund.status != RefundStatus.REQUESTED:
            return "done"
        log.warning("self refund %s: abandoned at %s, finishing it", refund.pk, PHASE_REQUESTED)
        stripe_refund = _self_refund_at_stripe(refund, look_first=True)
        if stripe_refund is None:
            self_refund_fail(refund=refund)
            return "failed"
        self_refund_complete(refund=refund, stripe_id=stripe_refund.id)
        return "succeeded"


def self_refunds_finish_abandoned(
    *, older_than: timedelta | None = None, limit: int = 500
) -> Counter[str]:
    """Finish every ``requested`` self refund older than ``RECHARGE_ABANDONED_AFTER_SECONDS``
    (the Celery beat's finish-abandoned-recharges, and every payment reconciliation)."""
    if older_than is None:
        older_than = timedelta(seconds=settings.RECHARGE_ABANDONED_AFTER_SECONDS)
    cutoff = timezone.now() - older_than
    ids = list(
        RechargeRefund.objects.filter(status=RefundStatus.REQUESTED, created_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    return finish_each(ids, lambda pk: self_refund_finish(refund_id=pk), "self refund")


# The metadata reason of the Stripe refunds a self refund makes: reconciliation and the webhook
# recognise one whose answer was lost and book it as the viewer's self refund.
SELF_REFUND_REASON = "self refund"


def self_refund_debit(*, recharge: Recharge, user: User) -> None:
    """Take the recharge's coins back from the wallet (all of them, or ``CoinsAlreadySpent``),
    once per recharge (``AlreadyRefunded``). Inside the caller's transaction, recharge locked."""
    try:
        result = ledger_post(
            kind=TransactionKind.REFUND,
            idempotency_key=f"refund:self:{recharge.pk}",
            postings=[
                Posting(wallet_get(user=user), -recharge.coins),
                Posting(platform_account(AccountKind.COIN_ISSUANCE), recharge.coins),
            ],
            actor=user,
            memo=f"Refund of recharge #{recharge.pk} (requested by you within "
            f"{settings.SELF_REFUND_WINDOW_HOURS} h): {recharge.coins:,} coins, {recharge.price}",
            reference=f"recharge:{recharge.pk}",
        )
    except InsufficientFunds as exc:
        raise CoinsAlreadySpent() from exc
    if not result.created:
        raise AlreadyRefunded()


def self_refund_record(
    *, recharge: Recharge, user: User, stripe_id: str, key: str | None
) -> RechargeRefund:
    """The refund row of a self refund whose coins ``self_refund_debit`` took back."""
    refund = RechargeRefund.objects.create(  # type: ignore[misc]  # MoneyField takes Money
        recharge=recharge,
        stripe_id=stripe_id,
        source=RefundSource.SELF,
        amount=recharge.price,
        coins=recharge.coins,
        coins_from_wallet=recharge.coins,
        reason="refunded by the viewer",
        actor=user,
        request_key=key,
    )
    recharge.coins_refunded = recharge.coins
    recharge.amount_refunded = recharge.price
    recharge.status = RechargeStatus.REFUNDED
    recharge.save(update_fields=["coins_refunded", "amount_refunded", "status", "updated_at"])
    return refund
