"""Portal pages: recharge, wallet, receipts. Payments happen in Stripe.js; see docs/recharge.md."""

import json
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from djmoney.money import Money
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import signed_in_user
from config.errors import DomainError, InvalidInput
from config.throttles import MoneyThrottle, RechargeThrottle
from wallets.api import recharge_create_from_request
from wallets.models import CoinPackagePrice, RechargeStatus
from wallets.selectors import (
    coin_packages_on_sale,
    recharge_balance_after,
    recharge_for_user,
    recharges_of,
    transaction_owner_description,
    wallet_entries,
    wallet_find,
)
from wallets.services import (
    recharge_self_refund,
    self_refund_status,
    spending_limits_effective,
    spending_limits_set,
)
from wallets.services.limits import (
    coins_bought_since,
    coins_gifted_since,
    day_start,
    month_start,
)
from wallets.templatetags.money import format_money

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money_text(money: Money) -> str:
    return format_money(money)


@login_required
def recharge_page(request: HttpRequest) -> HttpResponse:
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
    wallet = wallet_find(user=signed_in_user(request))
    own = spending_limits_effective(user_id=signed_in_user(request).pk)
    confirm_above = (
        own.confirm_above if own.confirm_above is not None else settings.COOLING_OFF_ABOVE
    )
    config = {
        "publishableKey": settings.STRIPE_PUBLISHABLE_KEY,
        "intentUrl": "/recharge/intent/",
        "currency": currency,
        "unitPrices": {c: str(p) for c, p in settings.COIN_UNIT_PRICE.items()},
        "symbols": SYMBOLS,
        "customMin": settings.CUSTOM_COINS_MIN,
        "customMax": settings.CUSTOM_COINS_MAX,
        "bestByCurrency": best_by_currency,
        "confirmAbove": confirm_above,
        "offlineCard": settings.STRIPE_OFFLINE_CARD_FORM,
        "offlineApiBase": settings.STRIPE_JS_URL.split("/js.stripe.com/")[0],
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
            "offline_card": settings.STRIPE_OFFLINE_CARD_FORM,
            "unit_price": settings.COIN_UNIT_PRICE[currency],
            "symbol": SYMBOLS.get(currency, ""),
            "custom_min": settings.CUSTOM_COINS_MIN,
            "custom_max": settings.CUSTOM_COINS_MAX,
            "can_buy": signed_in_user(request).is_adult,
            "frozen": bool(wallet and wallet.is_frozen),
            "refund_hours": settings.SELF_REFUND_WINDOW_HOURS,
            "limits": own,
        },
    )


class RechargeIntentView(APIView):
    """The portal's JSON endpoint: session auth with CSRF, same service as the API."""

    authentication_classes = [SessionAuthentication]
    throttle_classes = [MoneyThrottle, RechargeThrottle]

    @extend_schema(exclude=True)
    def post(self, request: Request) -> Response:
        return recharge_create_from_request(request, portal=True)


@login_required
def wallet_page(request: HttpRequest) -> HttpResponse:
    wallet = wallet_find(user=signed_in_user(request))
    page = Paginator(wallet_entries(user=signed_in_user(request)), 20).get_page(
        request.GET.get("page")
    )
    recharges = recharges_of(user=signed_in_user(request))[:10]
    return render(
        request,
        "wallets/wallet.html",
        {
            "wallet": wallet,
            "coins": wallet.balance if wallet else 0,
            "page": page,
            "rows": [(e, transaction_owner_description(e.transaction)) for e in page.object_list],
            "recharges": [(r, money_text(r.price)) for r in recharges],
        },
    )


@login_required
def receipt_page(request: HttpRequest, recharge_id: int) -> HttpResponse:
    recharge = recharge_for_user(user=signed_in_user(request), recharge_id=recharge_id)
    if recharge is None:
        raise Http404("No such recharge.")
    wallet = wallet_find(user=signed_in_user(request))
    coins = wallet.balance if wallet else 0
    return render(
        request,
        "wallets/receipt.html",
        {
            "refund": self_refund_status(recharge=recharge, wallet_coins=coins),
            "refund_key": uuid.uuid4().hex,
            "refund_hours": settings.SELF_REFUND_WINDOW_HOURS,
            "refund_error": request.session.pop(f"refund-error-{recharge.pk}", ""),
            "refunded": request.GET.get("refunded") == "1",
            "confirming_refund": request.GET.get("refund") == "confirm",
            "balance_after": recharge_balance_after(recharge=recharge),
            "refunds": [
                (r, money_text(r.amount)) for r in recharge.refunds.order_by("created_at", "pk")
            ],
            "recharge": recharge,
            "price_text": money_text(recharge.price),
            "refunded_text": money_text(recharge.amount_refunded),
            "coins": coins,
            "is_pending": recharge.public_status == RechargeStatus.PENDING,
            "statuses": RechargeStatus,
        },
    )


@login_required
@require_POST
def receipt_refund(request: HttpRequest, recharge_id: int) -> HttpResponse:
    """The receipt's "Refund this purchase" button. The form carries one key per page view,
    so a double click refunds once (the second submit finds the first refund). It only acts
    on the confirmation step's form: anything else goes back to that step."""
    if request.POST.get("confirm") != "yes":
        return redirect(f"/recharges/{recharge_id}/receipt/?refund=confirm#refund-title")
    try:
        recharge_self_refund(
            user=signed_in_user(request),
            recharge_id=recharge_id,
            request_key=request.POST.get("key", ""),
        )
    except DomainError as exc:
        if exc.status == 404:
            raise Http404("No such recharge.") from exc
        request.session[f"refund-error-{recharge_id}"] = exc.message
        return redirect(f"/recharges/{recharge_id}/receipt/")
    return redirect(f"/recharges/{recharge_id}/receipt/?refunded=1")


def _limit_field(raw: str | None, name: str) -> int | None:
    raw = (raw or "").strip().replace(",", "")
    if raw == "":
        return None
    if not raw.isdigit():
        raise InvalidInput(f"{name} must be a whole number of coins, or empty for none.")
    return int(raw)


@login_required
def limits_page(request: HttpRequest) -> HttpResponse:
    """Spending controls: own daily/monthly limits (raise in 24 h, lower at once) and the
    cooling-off threshold for purchases."""
    # "Saved" comes only from the redirect right after a good save (a one-time flash in the
    # session), never from the URL: a later bad POST must not show both.
    error, saved = "", request.session.pop("limits_saved", False)
    if request.method == "POST":
        saved = False
        try:
            spending_limits_set(
                user=signed_in_user(request),
                daily_limit=_limit_field(request.POST.get("daily_limit"), "The daily limit"),
                monthly_limit=_limit_field(request.POST.get("monthly_limit"), "The monthly limit"),
                confirm_above=_limit_field(
                    request.POST.get("confirm_above"), "The confirmation threshold"
                ),
            )
            request.session["limits_saved"] = True
            return redirect("/wallet/limits/")
        except DomainError as exc:
            error = exc.message
    now = timezone.now()
    return render(
        request,
        "wallets/limits.html",
        {
            "limits": spending_limits_effective(user_id=signed_in_user(request).pk, now=now),
            "bought_today": coins_bought_since(user=signed_in_user(request), since=day_start(now)),
            "bought_month": coins_bought_since(
                user=signed_in_user(request), since=month_start(now)
            ),
            "gifted_today": coins_gifted_since(user=signed_in_user(request), since=day_start(now)),
            "gifted_month": coins_gifted_since(
                user=signed_in_user(request), since=month_start(now)
            ),
            "default_confirm_above": settings.COOLING_OFF_ABOVE,
            "delay_hours": settings.SPENDING_LIMIT_RAISE_DELAY_HOURS,
            "error": error,
            "saved": saved,
        },
    )


@login_required
def purchases_page(request: HttpRequest) -> HttpResponse:
    """Every purchase, grouped by (UTC) month with the month's totals."""
    months: OrderedDict[datetime, dict[str, Any]] = OrderedDict()
    for recharge in recharges_of(user=signed_in_user(request)).select_related("package"):
        key = month_start(recharge.created_at)
        month = months.setdefault(
            key, {"month": key, "rows": [], "coins": 0, "refunded": 0, "spent": {}}
        )
        month["rows"].append((recharge, money_text(recharge.price)))
        if recharge.status in (
            RechargeStatus.SUCCEEDED,
            RechargeStatus.REFUNDED,
            RechargeStatus.DISPUTED,
        ):
            month["coins"] += recharge.coins - recharge.coins_refunded
            month["refunded"] += recharge.coins_refunded
            net = recharge.amount_remaining
            currency = str(net.currency)
            month["spent"][currency] = month["spent"].get(currency, 0) + net.amount
    for month in months.values():
        month["spent_text"] = [
            money_text(Money(amount, currency)) for currency, amount in month["spent"].items()
        ]
    return render(request, "wallets/purchases.html", {"months": list(months.values())})
