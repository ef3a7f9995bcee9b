"""Buying coins: quotes, the rules a purchase must pass, crediting exactly once.

The purchase itself (the Recharge and its PaymentIntent, in atomic phases) is
``wallets.services.purchase.recharge_create``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from djmoney.money import Money

from accounts.audit import audit_record
from accounts.client_address import ClientRequest
from config.errors import (
    AgeRestricted,
    DomainError,
    InvalidInput,
)
from wallets import stripe_gateway as gateway
from wallets.models import (
    Account,
    AccountKind,
    CoinPackage,
    CoinPackagePrice,
    Recharge,
    RechargeStatus,
    TransactionKind,
)
from wallets.services.discrepancies import discrepancy_record
from wallets.services.ledger import (
    Posting,
    _ensure_not_frozen,
    account_get,
    ledger_post,
    platform_account,
    wallet_get,
)

if TYPE_CHECKING:
    from accounts.models import User
    from notifications.services import Mail

log = logging.getLogger(__name__)

# What a buyer is told about any declined card: the reason (stolen card, wrong CVC, no funds)
# would tell a card tester which cards work. Stripe's own reason stays with staff.
DECLINE_MESSAGE = "Your card was declined."
DECLINE_CODE = "card_declined"

# A wallet frozen for coin debt carries this reason; settling the debt lifts that freeze only.
DEBT_FREEZE_REASON = "coin debt after a refund or chargeback"


class PaymentProviderError(DomainError):
    code = "payment_provider_error"
    status = 502
    default_message = "The payment provider could not be reached. Please try again."


@dataclass(frozen=True)
class Quote:
    package: CoinPackage | None
    coins: int
    price: Money


def _currency(currency: Any) -> str:
    code = str(currency or "").strip().upper()
    if code not in settings.CURRENCIES:
        raise InvalidInput(
            f"Unsupported currency; choose one of {', '.join(settings.CURRENCIES)}.",
            fields={"currency": [f"Must be one of {', '.join(settings.CURRENCIES)}."]},
        )
    return code


def _is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def package_is_on_sale(package: CoinPackage, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return (
        package.is_active
        and (package.available_from is None or package.available_from <= now)
        and (package.available_until is None or now < package.available_until)
    )


def custom_price(*, coins: int, currency: str) -> Money:
    unit_price = Decimal(settings.COIN_UNIT_PRICE[currency])
    exponent = gateway.currency_exponent(currency)
    amount = (unit_price * coins).quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP)
    return Money(amount, currency)


def recharge_quote(*, currency: Any, package_id: Any = None, coins: Any = None) -> Quote:
    """What a purchase costs: a package on sale in that currency, or a custom amount."""
    currency = _currency(currency)
    if (package_id is None) == (coins is None):
        raise InvalidInput(
            "Choose a coin package or a custom number of coins (not both).",
            fields={"package": ["Give either package or coins."]},
        )
    if package_id is not None:
        if not _is_whole_number(package_id):
            raise InvalidInput("Unknown coin package.", fields={"package": ["Unknown package."]})
        price_row = (
            CoinPackagePrice.objects.select_related("package")
            .filter(package_id=package_id, price_currency=currency)
            .first()
        )
        if price_row is None or not package_is_on_sale(price_row.package):
            raise InvalidInput(
                "That coin package is not on sale in this currency.",
                fields={"package": ["Unknown package or not available in this currency."]},
            )
        package = price_row.package
        return Quote(package, package.total_coins, price_row.price)
    low, high = settings.CUSTOM_COINS_MIN, settings.CUSTOM_COINS_MAX
    if not _is_whole_number(coins) or not low <= coins <= high:
        raise InvalidInput(
            f"A custom amount must be a whole number of coins from {low:,} to {high:,}.",
            fields={"coins": [f"Must be a whole number from {low} to {high}."]},
        )
    return Quote(None, coins, custom_price(coins=coins, currency=currency))


def _purchased_today(user: User) -> int:
    since = timezone.now() - timedelta(days=1)
    total = (
        Recharge.objects.filter(user=user, created_at__gte=since)
        .exclude(status=RechargeStatus.FAILED)
        .aggregate(total=Sum("coins"))["total"]
    )
    return int(total or 0)


def _check_can_buy(user: User) -> Account:
    if not user.is_adult:
        raise AgeRestricted(f"You must be {settings.MINIMUM_AGE} or older to buy coins.")
    wallet = wallet_get(user=user)
    _ensure_not_frozen(wallet)
    return wallet


def _intent_problem(
    recharge: Recharge, intent: gateway.PaymentIntent
) -> tuple[str, str, str] | None:
    """Why Stripe's PaymentIntent does not pay for this recharge, as (discrepancy kind,
    expected, found); None when it does. A missing amount or currency is a mismatch."""
    amount = intent.amount
    currency = (intent.currency or "").upper()
    amount_ok = amount is not None and amount == gateway.to_minor(recharge.price)
    if not amount_ok or currency != str(recharge.price.currency):
        return (
            "amount_mismatch",
            f"{recharge.price} (recharge {recharge.pk})",
            f"{amount} {currency or None}",
        )
    app, user_id = intent.metadata.get("app"), intent.metadata.get("user_id")
    if app != "applause" or user_id != str(recharge.user_id):
        return (
            "metadata_mismatch",
            f"app=applause user_id={recharge.user_id} (recharge {recharge.pk})",
            f"app={app} user_id={user_id}",
        )
    return None


def _lock_wallet_and_debt(user: User) -> tuple[Account, Account]:
    """Lock the user's wallet and debt rows in id order (the ledger's lock order)."""
    wallet = wallet_get(user=user)
    debt = account_get(kind=AccountKind.COIN_DEBT, user=user)
    locked = {
        account.pk: account
        for account in Account.objects.select_for_update()
        .filter(pk__in=[wallet.pk, debt.pk])
        .order_by("pk")
    }
    return locked[wallet.pk], locked[debt.pk]


def coins_credit(
    *,
    user: User,
    coins: int,
    kind: str,
    idempotency_key: str,
    memo: str,
    reference: str,
    actor: User | None = None,
) -> bool:
    """Issue ``coins`` to a user: coin debt is settled first, the rest lands in the wallet.

    Returns whether the transaction was new. Lifts a debt freeze once the debt is cleared.
    """
    wallet, debt = _lock_wallet_and_debt(user)
    settle = min(coins, -debt.balance)
    result = ledger_post(
        kind=kind,
        idempotency_key=idempotency_key,
        postings=[
            Posting(platform_account(AccountKind.COIN_ISSUANCE), -coins),
            Posting(debt, settle),
            Posting(wallet, coins - settle),
        ],
        actor=actor,
        memo=memo,
        reference=reference,
    )
    if result.created and settle and debt.balance + settle == 0:
        Account.objects.filter(pk=wallet.pk, frozen_reason=DEBT_FREEZE_REASON).update(
            is_frozen=False, frozen_reason=""
        )
    return result.created


@transaction.atomic
def recharge_apply_success(
    *, payment_intent_id: str, intent: gateway.PaymentIntent
) -> Recharge | None:
    """Credit a succeeded payment's coins, exactly once. The webhook and reconciliation
    both come here; the conditional status flip and the ledger's unique key
    ``recharge:<payment_intent>`` each make duplicates harmless.

    ``intent`` is the PaymentIntent as Stripe answered it (retrieved, listed or confirmed by
    us), never a webhook body. Coins are credited only when it succeeded and its amount,
    currency and metadata (ours, this user) match the recharge; a mismatch credits nothing
    and opens a discrepancy.
    """
    recharge = Recharge.objects.filter(payment_intent=payment_intent_id).first()
    if recharge is None:
        return None
    if intent.id != payment_intent_id or intent.status != "succeeded":
        return recharge
    problem = _intent_problem(recharge, intent)
    if problem is not None:
        kind, expected, found = problem
        log.warning("payment intent %s not credited: %s (%s)", payment_intent_id, kind, found)
        discrepancy_record(
            kind=kind,
            object_type="payment_intent",
            object_id=payment_intent_id,
            expected=expected,
            found=found,
        )
        return recharge
    flipped = Recharge.objects.filter(
        pk=recharge.pk,
        status__in=[RechargeStatus.CREATING, RechargeStatus.PENDING, RechargeStatus.FAILED],
    ).update(status=RechargeStatus.SUCCEEDED, succeeded_at=timezone.now(), failure_message="")
    if flipped:
        coins_credit(
            user=recharge.user,
            coins=recharge.coins,
            kind=TransactionKind.RECHARGE,
            idempotency_key=recharge.ledger_key,
            memo=f"Recharge #{recharge.pk}: {recharge.coins:,} coins for {recharge.price}",
            reference=f"recharge:{recharge.pk}",
        )
        recharge.refresh_from_db()
        _receipt_enqueue(recharge)
    recharge.refresh_from_db()
    return recharge


def _receipt_enqueue(recharge: Recharge) -> None:
    """The receipt email, written in the same transaction as the credit."""
    from notifications.services import email_enqueue

    mail = receipt_mail(recharge)
    email_enqueue(event=mail.event, user=mail.user, template=mail.template, context=mail.context)


def receipt_mail(recharge: Recharge) -> Mail:
    """The receipt of a credited recharge, as a ``notifications.services.Mail``."""
    from notifications.services import Mail, site_url

    return Mail(
        event=f"recharge_receipt:{recharge.pk}",
        user=recharge.user,
        template="recharge_receipt",
        context={
            "recharge_id": recharge.pk,
            "coins": f"{recharge.coins:,}",
            "price": f"{recharge.price.currency} {recharge.price.amount:,.2f}",
            "paid_at": recharge.succeeded_at,
            "payment_intent": recharge.payment_intent,
            "receipt_url": site_url(f"/recharges/{recharge.pk}/receipt/"),
        },
    )


@transaction.atomic
def recharge_mark_failed(
    *,
    payment_intent_id: str,
    message: str = "",
    failure_code: str = "",
    decline_reason: str = "",
    card_fingerprint: str = "",
) -> Recharge | None:
    """A pending recharge whose payment failed. Never touches a credited one.

    ``message`` and ``failure_code`` are what the buyer sees; ``decline_reason`` (Stripe's
    reason) and ``card_fingerprint`` are for staff only (the admin)."""
    Recharge.objects.filter(
        payment_intent=payment_intent_id,
        status__in=[RechargeStatus.CREATING, RechargeStatus.PENDING],
    ).update(
        status=RechargeStatus.FAILED,
        failure_message=(message or "The payment failed.")[:500],
        failure_code=failure_code[:64],
        decline_reason=decline_reason[:500],
        card_fingerprint=card_fingerprint[:64],
    )
    return Recharge.objects.filter(payment_intent=payment_intent_id).first()


@transaction.atomic
def coin_debt_write_off(
    *, user: User, reason: str, actor: User, request: ClientRequest | None = None
) -> int:
    """Staff absorb a user's coin debt (write-off account) and lift the debt freeze. Audited
    (``coin_debt_write_off``) in the same transaction."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    wallet, debt = _lock_wallet_and_debt(user)
    owed = -debt.balance
    if owed <= 0:
        return 0
    result = ledger_post(
        kind=TransactionKind.WRITE_OFF,
        idempotency_key=f"write-off:{debt.pk}:{timezone.now().isoformat()}",
        postings=[
            Posting(debt, owed),
            Posting(platform_account(AccountKind.COIN_WRITE_OFFS), -owed),
        ],
        actor=actor,
        memo=reason,
        reference=f"user:{user.pk}",
    )
    Account.objects.filter(pk=wallet.pk, frozen_reason=DEBT_FREEZE_REASON).update(
        is_frozen=False, frozen_reason=""
    )
    audit_record(
        actor=actor,
        action="coin_debt_write_off",
        obj=wallet,
        before={"coin_debt": -owed},
        after={"coin_debt": 0, "coins": owed, "transaction": result.transaction.pk},
        reason=reason,
        request=request,
    )
    return owed
