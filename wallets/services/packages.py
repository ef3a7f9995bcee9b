"""Coin package prices, four-eyes: one finance member proposes a price (new or changed) and a
different one approves it; only the approval changes what viewers pay. A staff member's
acting on a proposal is audited through ``accounts.audit``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from djmoney.money import Money

from accounts.audit import audit_record
from accounts.client_address import ClientRequest
from config.errors import DomainError, InvalidInput
from wallets.models import CoinPackage, CoinPackagePrice, CoinPackagePriceChange, PriceChangeStatus

if TYPE_CHECKING:
    from accounts.models import User


class PriceChangeConflict(DomainError):
    code = "price_change_conflict"
    status = 409
    default_message = "This price change is not pending any more."


class SecondFinanceMemberRequired(DomainError):
    code = "second_approver_required"
    status = 403
    default_message = "You proposed this price: a different finance member must approve it."


def _require_finance(actor: User | None) -> None:
    # The finance role's group carries this permission (staff.permissions.ROLE_PERMISSIONS).
    if actor is None or not actor.has_perm("wallets.change_coinpackageprice"):
        raise PermissionDenied("Coin package prices need the finance role.")


def coin_package_price_propose(
    *,
    actor: User,
    package: CoinPackage,
    price: Money,
    reason: str,
    request: ClientRequest | None = None,
) -> CoinPackagePriceChange:
    """Propose ``price`` (its currency included) for ``package``. Nothing changes yet."""
    _require_finance(actor)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    currency = str(price.currency)
    if currency not in settings.CURRENCIES:
        raise InvalidInput("Unknown currency.", fields={"price": ["Unknown currency."]})
    try:
        amount = Decimal(price.amount)
    except (InvalidOperation, TypeError) as exc:
        raise InvalidInput("Enter a price.", fields={"price": ["Enter a price."]}) from exc
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(
            "The price must be more than zero, in cents.", fields={"price": ["More than 0.00."]}
        )
    current = CoinPackagePrice.objects.filter(package=package, price_currency=currency).first()
    try:
        with transaction.atomic():
            change = CoinPackagePriceChange.objects.create(  # type: ignore[misc]  # MoneyField takes Money
                package=package,
                price=Money(amount, currency),
                previous_amount=current.price.amount if current else None,
                reason=reason[:500],
                requested_by=actor,
            )
            audit_record(
                actor=actor,
                action="coin_price_propose",
                obj=change,
                before={"price": str(current.price) if current else None},
                after={"price": str(change.price), "package": package.pk},
                reason=reason,
                request=request,
            )
    except IntegrityError as exc:
        raise PriceChangeConflict(
            f"A {currency} price change for this package is already waiting: approve or reject "
            "it first."
        ) from exc
    return change


def _pending(change: CoinPackagePriceChange) -> CoinPackagePriceChange:
    locked = CoinPackagePriceChange.objects.select_for_update().get(pk=change.pk)
    if locked.status != PriceChangeStatus.PENDING:
        raise PriceChangeConflict(f"This price change is already {locked.status}.")
    return locked


def coin_package_price_approve(
    *,
    actor: User,
    change: CoinPackagePriceChange,
    note: str = "",
    request: ClientRequest | None = None,
) -> CoinPackagePriceChange:
    """A different finance member approves: the package's price in that currency changes."""
    _require_finance(actor)
    if change.requested_by_id == actor.pk:
        audit_record(
            actor=actor,
            action="four_eyes_refused",
            obj=change,
            after={"refused": "coin_price_approve"},
            reason="the proposer of a price change cannot approve it",
            request=request,
        )
        raise SecondFinanceMemberRequired()
    with transaction.atomic():
        change = _pending(change)
        if change.requested_by_id == actor.pk:
            raise SecondFinanceMemberRequired()
        currency = str(change.price.currency)
        row, created = CoinPackagePrice.objects.select_for_update().get_or_create(  # type: ignore[misc]  # MoneyField takes Money
            package_id=change.package_id,
            price_currency=currency,
            defaults={"price": change.price},
        )
        before = None if created else str(row.price)
        if not created:
            row.price = change.price
            row.save(update_fields=["price"])
        change.status = PriceChangeStatus.APPROVED
        change.decided_by = actor
        change.decided_at = timezone.now()
        change.decision_note = (note or "")[:500]
        change.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        audit_record(
            actor=actor,
            action="coin_price_approve",
            obj=change,
            before={"price": before},
            after={"price": str(change.price), "package": change.package_id},
            reason=note,
            request=request,
        )
    return change


def coin_package_price_reject(
    *, actor: User, change: CoinPackagePriceChange, note: str, request: ClientRequest | None = None
) -> CoinPackagePriceChange:
    _require_finance(actor)
    note = (note or "").strip()
    if not note:
        raise InvalidInput("A note is required.", fields={"note": ["This field is required."]})
    with transaction.atomic():
        change = _pending(change)
        change.status = PriceChangeStatus.REJECTED
        change.decided_by = actor if actor.pk != change.requested_by_id else None
        change.decided_at = timezone.now()
        change.decision_note = note[:500]
        change.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        audit_record(
            actor=actor,
            action="coin_price_reject",
            obj=change,
            after={"status": change.status},
            reason=note,
            request=request,
        )
    return change
