from decimal import Decimal

from django.contrib.auth import get_user_model
from djmoney.money import Money

from wallets.models import CoinPackage, CoinPackagePrice
from wallets.services import wallet_adjust

# Modelled on TikTok's coin store (USD), with EUR and GBP price points of the same tier.
PACKAGES = [
    # coins, bonus, USD, EUR, GBP
    (70, 0, "0.99", "0.99", "0.89"),
    (350, 0, "4.99", "4.99", "4.49"),
    (700, 35, "9.99", "9.99", "8.99"),
    (1400, 70, "19.99", "19.99", "17.99"),
    (3500, 250, "49.99", "49.99", "44.99"),
    (7000, 700, "99.99", "99.99", "89.99"),
]


def seed_packages() -> int:
    created = 0
    for order, (coins, bonus, usd, eur, gbp) in enumerate(PACKAGES):
        package, made = CoinPackage.objects.get_or_create(
            coins=coins, defaults={"bonus_coins": bonus, "sort_order": order}
        )
        created += made
        for currency, amount in (("USD", usd), ("EUR", eur), ("GBP", gbp)):
            CoinPackagePrice.objects.get_or_create(  # type: ignore[misc]  # MoneyField takes Money
                package=package,
                price_currency=currency,
                defaults={"price": Money(Decimal(amount), currency)},
            )
    return created


def seed(out: list[str]) -> None:
    created = seed_packages()
    out.append(f"{len(PACKAGES)} coin packages ({created} new), priced in USD, EUR and GBP")
    viewer = get_user_model().objects.get(username="viewer")
    wallet_adjust(
        user=viewer,
        coins=5000,
        reason="Demo welcome coins",
        actor=None,
        idempotency_key="demo:viewer-welcome-coins",
    )
    out.append("viewer starts with 5,000 demo coins")
