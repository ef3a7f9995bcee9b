"""Portal pages: recharge, wallet, receipts. Payments happen in Stripe.js; see docs/recharge.md."""

import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from config.api import MoneyThrottle, idempotent
from wallets import stripe_gateway as gateway
from wallets.api import recharge_create_from_request
from wallets.models import CoinPackagePrice, RechargeStatus
from wallets.selectors import (
    coin_packages_on_sale,
    recharge_for_user,
    recharges_of,
    wallet_entries,
    wallet_find,
)

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money_text(money) -> str:
    currency = str(money.currency)
    exponent = gateway.currency_exponent(currency)
    amount = f"{money.amount:,.{exponent}f}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{amount}" if symbol else f"{amount} {currency}"


@login_required
def recharge_page(request):
    currency = request.GET.get("currency", "USD").upper()
    if currency not in settings.CURRENCIES:
        currency = "USD"
    packages = []
    on_sale = coin_packages_on_sale(currency=currency)
    ids = [package.pk for package, _, _ in on_sale]
    prices: dict[int, dict[str, str]] = {pk: {} for pk in ids}
    for row in CoinPackagePrice.objects.filter(package_id__in=ids):
        prices[row.package_id][str(row.price_currency)] = money_text(row.price)
    best_by_currency = {
        cur: next((p.pk for p, _, best in coin_packages_on_sale(currency=cur) if best), None)
        for cur in settings.CURRENCIES
    }
    for package, price, best in on_sale:
        packages.append(
            {
                "package": package,
                "price_text": money_text(price),
                "best": best,
                "prices_json": json.dumps(prices[package.pk]),
            }
        )
    wallet = wallet_find(user=request.user)
    config = {
        "publishableKey": settings.STRIPE_PUBLISHABLE_KEY,
        "intentUrl": "/recharge/intent/",
        "currency": currency,
        "unitPrices": {c: str(p) for c, p in settings.COIN_UNIT_PRICE.items()},
        "symbols": SYMBOLS,
        "customMin": settings.CUSTOM_COINS_MIN,
        "customMax": settings.CUSTOM_COINS_MAX,
        "bestByCurrency": best_by_currency,
    }
    return render(
        request,
        "wallets/recharge.html",
        {
            "packages": packages,
            "currency": currency,
            "currencies": settings.CURRENCIES,
            "config": config,
            "stripe_js_url": settings.STRIPE_JS_URL,
            "unit_price": settings.COIN_UNIT_PRICE[currency],
            "symbol": SYMBOLS.get(currency, ""),
            "custom_min": settings.CUSTOM_COINS_MIN,
            "custom_max": settings.CUSTOM_COINS_MAX,
            "can_buy": request.user.is_adult,
            "frozen": bool(wallet and wallet.is_frozen),
        },
    )


class RechargeIntentView(APIView):
    """The portal's JSON endpoint: session auth with CSRF, same service as the API."""

    authentication_classes = [SessionAuthentication]
    throttle_classes = [MoneyThrottle]

    @extend_schema(exclude=True)
    def post(self, request):
        return idempotent(request, lambda: recharge_create_from_request(request))


@login_required
def wallet_page(request):
    wallet = wallet_find(user=request.user)
    page = Paginator(wallet_entries(user=request.user), 20).get_page(request.GET.get("page"))
    recharges = recharges_of(user=request.user)[:10]
    return render(
        request,
        "wallets/wallet.html",
        {
            "wallet": wallet,
            "coins": wallet.balance if wallet else 0,
            "page": page,
            "recharges": [(r, money_text(r.price)) for r in recharges],
        },
    )


@login_required
def receipt_page(request, recharge_id: int):
    recharge = recharge_for_user(user=request.user, recharge_id=recharge_id)
    if recharge is None:
        raise Http404("No such recharge.")
    wallet = wallet_find(user=request.user)
    return render(
        request,
        "wallets/receipt.html",
        {
            "recharge": recharge,
            "price_text": money_text(recharge.price),
            "refunded_text": money_text(recharge.amount_refunded),
            "coins": wallet.balance if wallet else 0,
            "is_pending": recharge.status == RechargeStatus.PENDING,
            "statuses": RechargeStatus,
        },
    )
