""" "Cash out now": a creator's own payout of available diamonds, outside the weekly batch.

The same rules as the batch (verified method, minimum, approval and tax-form holds, one open
payout per creator) and the same send path (``payout_send_task``); the only differences are
who asks, when, and the fee (``INSTANT_PAYOUT_FEE_PCT``) kept from the amount sent.

Race-safety: the payout row and its ledger move (available → in payout) commit together; the
partial unique index ``payout_one_open_per_creator`` refuses a second open payout (a double
click, two devices, or the weekly batch at the same moment), and the ledger's conditional
debit refuses diamonds already taken. Whichever commits second gets ``payout_open``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from djmoney.money import Money

from config.errors import DomainError, InsufficientFunds, InvalidInput
from payouts.models import OPEN_STATUSES, Payout, PayoutEvent, PayoutMethod, PayoutStatus, Rail
from payouts.notices import payout_notify
from payouts.services import creator_required, diamonds_value, minimum_payout_diamonds, payout_holds
from payouts.services.batch import _paid_this_year
from payouts.services.transitions import _enqueue_send
from payouts.statements import statement_allocate
from wallets.models import AccountKind, TransactionKind
from wallets.services import Posting, account_get, ledger_post
from wallets.services.bulk import accounts_lock

if TYPE_CHECKING:
    from accounts.models import User
    from creators.models import Creator


class PayoutOpen(DomainError):
    code = "payout_open"
    status = 409
    default_message = "You already have a payout on its way; wait until it is paid or failed."


class PayoutMethodNotReady(DomainError):
    code = "payout_method_unverified"
    status = 409
    default_message = "Add a payout method and have it verified before cashing out."


class BelowMinimum(DomainError):
    code = "below_minimum"
    status = 400
    default_message = "That is less than the minimum payout."


@dataclass
class InstantQuote:
    diamonds: int
    diamonds_available: int
    value: Money  # what the diamonds are worth
    fee: Money
    amount: Money  # what is sent: value - fee
    fee_pct: Decimal
    holds: list[str]


def instant_fee(value: Money) -> Money:
    """``INSTANT_PAYOUT_FEE_PCT`` of the value, to the cent, half up."""
    fee = (value.amount * settings.INSTANT_PAYOUT_FEE_PCT / 100).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    return Money(fee, value.currency)


def _checked_diamonds(diamonds: int | None, available: int) -> int:
    if diamonds is None:
        diamonds = available
    elif isinstance(diamonds, bool) or not isinstance(diamonds, int) or diamonds <= 0:
        raise InvalidInput(
            "diamonds must be a positive whole number.",
            fields={"diamonds": ["Enter a positive whole number."]},
        )
    minimum = minimum_payout_diamonds()
    if diamonds > available:
        raise InsufficientFunds(
            f"You have {available:,} diamonds available; you asked for {diamonds:,}.",
            fields={"diamonds": [f"At most {available:,}."]},
        )
    if diamonds < minimum:
        raise BelowMinimum(
            f"The minimum payout is {minimum:,} diamonds "
            f"({settings.PAYOUT_CURRENCY} {settings.PAYOUT_MINIMUM}).",
            fields={"diamonds": [f"At least {minimum:,}."]},
        )
    return diamonds


def _method(creator: Creator) -> PayoutMethod:
    method = PayoutMethod.objects.filter(creator=creator).first()
    if method is None or not method.is_verified:
        raise PayoutMethodNotReady()
    return method


def payout_instant_quote(*, user: User, diamonds: int | None = None) -> InstantQuote:
    """What cashing out now would send, and why it might be held (shown before confirming)."""
    creator = creator_required(user=user)
    if not creator.is_active:
        raise PayoutMethodNotReady("Your creator account is suspended; payouts are paused.")
    method = _method(creator)
    if Payout.objects.filter(creator=creator, status__in=OPEN_STATUSES).exists():
        raise PayoutOpen()
    available = account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=user).balance
    diamonds = _checked_diamonds(diamonds, available)
    value = diamonds_value(diamonds)
    fee = instant_fee(value)
    amount = value - fee
    holds = payout_holds(
        method=method,
        amount=amount,
        paid_this_year=_paid_this_year([creator.pk]).get(creator.pk, Decimal(0)),
    )
    return InstantQuote(
        diamonds=diamonds,
        diamonds_available=available,
        value=value,
        fee=fee,
        amount=amount,
        fee_pct=settings.INSTANT_PAYOUT_FEE_PCT,
        holds=holds,
    )


def payout_instant_create(*, user: User, diamonds: int | None = None) -> Payout:
    """Create the creator's instant payout and queue it for the rail after the commit."""
    quote = payout_instant_quote(user=user, diamonds=diamonds)
    creator = creator_required(user=user)
    method = _method(creator)
    status = PayoutStatus.AWAITING_APPROVAL if quote.holds else PayoutStatus.REQUESTED
    try:
        with transaction.atomic():
            # The accounts first (the in-payout one created if missing), locked in id order,
            # as the payout batch's chunk does: the other order (payout row, then accounts)
            # deadlocked against a batch chunk holding these accounts and waiting on the
            # payout row's unique index.
            available = account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=creator.user)
            in_payout = account_get(kind=AccountKind.DIAMONDS_IN_PAYOUT, user=creator.user)
            accounts_lock(account_ids=[available.pk, in_payout.pk])
            payout = Payout.objects.create(  # type: ignore[misc]  # djmoney: MoneyField takes Money
                creator=creator,
                diamonds=quote.diamonds,
                amount=quote.amount,
                fee=quote.fee,
                is_instant=True,
                status=status,
                rail=method.rail,
                destination=method.stripe_account_id if method.rail == Rail.STRIPE else method.iban,
                hold_reason="; ".join(quote.holds)[:200],
                diamond_value=settings.DIAMOND_VALUE,
            )
            PayoutEvent.objects.create(
                payout=payout,
                to_status=status,
                actor=user,
                note=("cash out now; " + payout.hold_reason).strip("; ")[:500],
            )
            ledger_post(
                kind=TransactionKind.PAYOUT_CREATED,
                idempotency_key=f"payout-created:{payout.pk}",
                postings=[
                    Posting(available, -quote.diamonds),
                    Posting(in_payout, quote.diamonds),
                ],
                actor=user,
                memo=f"Instant payout #{payout.pk} ({quote.amount}, fee {quote.fee})",
                reference=f"payout:{payout.pk}",
            )
            statement_allocate(payout=payout)
            payout_notify(payout=payout)
            if status == PayoutStatus.REQUESTED:
                _enqueue_send([payout.pk])
    except IntegrityError:
        # The unique open-payout index: another request (or the batch) got there first.
        raise PayoutOpen()
    except InsufficientFunds:
        # The diamonds moved between the quote and the debit (a concurrent payout took them).
        raise PayoutOpen("Those diamonds were just taken by another payout; check your payouts.")
    return payout
