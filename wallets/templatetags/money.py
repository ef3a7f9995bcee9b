"""One rule for showing money, everywhere a person reads it (pages, receipts, statements).

- The currency's symbol where it has one, else the ISO code after the amount:
  ``$103.39``, ``€5.00``, ``1,000 JPY``.
- A true minus sign before the symbol: ``−$0.0050``.
- ``money``: to the currency's minor unit (what is charged or paid).
  ``money_exact``: four decimal places, for computed values that can hold fractions of a cent
  (a diamond is USD 0.005), so the page agrees with the CSV to the last digit.
CSV files keep plain machine-readable numbers.
"""

from decimal import Decimal
from typing import Any

from django import template

from wallets import stripe_gateway as gateway

register = template.Library()

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
EXACT_PLACES = 4


def format_money(money: Any, places: int | None = None) -> str:
    """``money``: a Money, or whatever a template holds there (None, "" when missing)."""
    if money is None or money == "":
        return ""
    currency = str(money.currency)
    digits = gateway.currency_exponent(currency) if places is None else places
    amount = Decimal(money.amount)
    number = f"{abs(amount):,.{digits}f}"
    sign = "−" if amount < 0 and Decimal(number.replace(",", "")) != 0 else ""
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}"


@register.filter(name="money")
def money_filter(money: Any) -> str:
    return format_money(money)


@register.filter(name="money_exact")
def money_exact_filter(money: Any) -> str:
    return format_money(money, EXACT_PLACES)
