"""What a gift is worth to the creator and to the platform, shown before paying (issue #19).

One function, ``gift_quote``, turns coins into diamonds and values, and every surface uses it:
``GET gifts/quote/``, the ``creator_value`` of the ``gifts/send`` answer, the gift panel and
the receipt text ("the creator receives ≈ $3.50 of this").

How it is computed (docs/goals.md, "The split"):
- ``diamonds`` = the gift's coins at ``DIAMONDS_PER_COIN_NUM/DEN`` (exactly what the gift
  credits, ``gifts.services.diamonds_for``);
- ``payout_value`` = diamonds × ``DIAMOND_VALUE``, in ``PAYOUT_CURRENCY``: exactly what the
  payout statement lists for that gift (payouts round the whole payout down to the cent);
- ``price`` = coins × the coin's unit price in the viewer's currency (``COIN_UNIT_PRICE``,
  the custom-amount price; packages with bonus coins make a coin a little cheaper);
- ``rate`` = payout_value ÷ the coins' price in ``PAYOUT_CURRENCY`` (the creator's share,
  0–1); Applause converts no currencies, so in EUR or GBP the creator's value is the same
  share of the coins' price in that currency;
- ``creator_value`` = rate × price, to the cent; ``platform_value`` = price − creator_value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from djmoney.money import Money

from config.errors import InvalidInput
from gifts.services import diamonds_for
from wallets.templatetags.money import format_money

CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class GiftQuote:
    coins: int
    diamonds: int
    rate: Decimal
    price: Money
    creator_value: Money
    platform_value: Money
    payout_value: Money

    def as_dict(self) -> dict[str, Any]:
        return {
            "coins": self.coins,
            "diamonds": self.diamonds,
            "creator_value": money_dict(self.creator_value),
            "platform_value": money_dict(self.platform_value),
            "rate": float(self.rate),
            "price": money_dict(self.price),
            "payout_value": money_dict(self.payout_value),
        }


def money_dict(value: Money) -> dict[str, str]:
    return {"amount": str(value.amount), "currency": str(value.currency)}


def quote_currency(currency: str | None) -> str:
    """The viewer's currency for a quote; ``None`` or empty means ``PAYOUT_CURRENCY``."""
    code = (currency or settings.PAYOUT_CURRENCY).strip().upper()
    if code not in settings.CURRENCIES or code not in settings.COIN_UNIT_PRICE:
        raise InvalidInput(
            f"currency is one of {', '.join(settings.CURRENCIES)}.",
            fields={"currency": [f"One of: {', '.join(settings.CURRENCIES)}."]},
        )
    return code


def gift_quote(
    *, coins: int, currency: str | None = None, diamonds: int | None = None
) -> GiftQuote:
    """The split of ``coins`` spent on a gift, valued in ``currency``.

    ``diamonds`` is the gift's own figure when it is already booked (a sent gift keeps the rate
    of its day); otherwise today's ``DIAMONDS_PER_COIN``.
    """
    code = quote_currency(currency)
    if diamonds is None:
        diamonds = diamonds_for(coins)
    payout_currency = settings.PAYOUT_CURRENCY
    payout_amount = Decimal(diamonds) * settings.DIAMOND_VALUE
    unit_prices = settings.COIN_UNIT_PRICE
    base_price = Decimal(coins) * unit_prices.get(payout_currency, unit_prices[code])
    rate = (payout_amount / base_price).quantize(RATE_PLACES) if base_price else Decimal(0)
    rate = min(max(rate, Decimal(0)), Decimal(1))
    price = (Decimal(coins) * unit_prices[code]).quantize(CENT, ROUND_HALF_UP)
    if code == payout_currency:
        creator_amount = payout_amount.quantize(CENT, ROUND_HALF_UP)
    else:
        exact = (
            payout_amount * unit_prices[code] / unit_prices.get(payout_currency, unit_prices[code])
        )
        creator_amount = exact.quantize(CENT, ROUND_HALF_UP)
    creator_amount = min(creator_amount, price)
    return GiftQuote(
        coins=coins,
        diamonds=diamonds,
        rate=rate,
        price=Money(price, code),
        creator_value=Money(creator_amount, code),
        platform_value=Money(price - creator_amount, code),
        payout_value=Money(payout_amount, payout_currency),
    )


def creator_value_text(quote: GiftQuote) -> str:
    """ "the creator receives ≈ $3.50 of this" (portal and receipts)."""
    return f"the creator receives ≈ {format_money(quote.creator_value)} of this"
