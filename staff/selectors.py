"""Dashboard figures. Each is one aggregate query (GROUP BY day where it is a series) on an
indexed range, so it stays fast on millions of rows; the whole dashboard is cached briefly.

Models of apps that are not there (yet) make their figures ``None`` (shown as "—").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.core.cache import cache
from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from wallets.models import Account, AccountKind, Entry, LedgerTransaction, TransactionKind

DAYS = 30
CACHE_KEY = "staff:dashboard:v1"
CACHE_SECONDS = 60


def _model(app_label: str, name: str):
    if not apps.is_installed(app_label):
        return None
    try:
        return apps.get_model(app_label, name)
    except LookupError:
        return None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# --- Money in -------------------------------------------------------------------------------


def revenue_by_day(*, since: date) -> list[dict]:
    """[{day, currency, amount, coins, count}] of recharges that succeeded since ``since``
    (gross: refunds are counted on their own). ``created_at`` bounds the index range: a
    payment succeeds within minutes of its creation, a day of slack covers late webhooks."""
    Recharge = _model("wallets", "Recharge")
    if Recharge is None:
        return []
    from wallets.models import CREDITED_STATUSES

    start = _day_start(since)
    rows = (
        Recharge.objects.filter(
            status__in=CREDITED_STATUSES,
            created_at__gte=start - timedelta(days=1),
            succeeded_at__gte=start,
        )
        .annotate(day=TruncDate("succeeded_at"))
        .values("day", "price_currency")
        .annotate(amount=Sum("price"), coins=Sum("coins"), count=Count("id"))
        .order_by("day", "price_currency")
    )
    return [
        {
            "day": row["day"],
            "currency": str(row["price_currency"]),
            "amount": Decimal(row["amount"] or 0),
            "coins": int(row["coins"] or 0),
            "count": int(row["count"]),
        }
        for row in rows
    ]


# --- Gifts ----------------------------------------------------------------------------------


def gifts_by_day(*, since: date) -> list[dict]:
    """[{day, count, coins}] from the ledger: every gift is one entry on the platform's
    ``coins_spent`` account, read through its (account, created_at) INCLUDE amount index."""
    spent = Account.objects.filter(kind=AccountKind.COINS_SPENT, user__isnull=True).first()
    if spent is None:
        return []
    rows = (
        Entry.objects.filter(account_id=spent.pk, created_at__gte=_day_start(since))
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(count=Count("id"), coins=Sum("amount"))
        .order_by("day")
    )
    return [
        {"day": r["day"], "count": int(r["count"]), "coins": int(r["coins"] or 0)} for r in rows
    ]


def top_gifts(*, since: date, limit: int = 5) -> list[dict] | None:
    GiftEvent = _model("gifts", "GiftEvent")
    Gift = _model("gifts", "Gift")
    if GiftEvent is None or Gift is None:
        return None
    # GiftEvent has no created_at index; its transaction ids grow with time and are unique-
    # indexed, so the first gift transaction of the window bounds an index range instead.
    first = LedgerTransaction.objects.filter(
        kind=TransactionKind.GIFT, created_at__gte=_day_start(since)
    ).aggregate(first=Min("id"))["first"]
    if first is None:
        return []
    rows = list(
        GiftEvent.objects.filter(transaction_id__gte=first)
        .values("gift_id")
        .annotate(quantity=Sum("quantity"), coins=Sum("coins"), count=Count("id"))
        .order_by("-coins")[:limit]
    )
    names = dict(Gift.objects.filter(pk__in=[r["gift_id"] for r in rows]).values_list("pk", "name"))
    return [
        {
            "name": names.get(r["gift_id"], f"#{r['gift_id']}"),
            "quantity": int(r["quantity"] or 0),
            "coins": int(r["coins"] or 0),
            "count": int(r["count"]),
        }
        for r in rows
    ]


# --- Balances -------------------------------------------------------------------------------


def balances_by_kind() -> dict[str, int]:
    """Sum of balances per account kind. Cold kinds: the rows. Diamonds pending is hot: its
    checkpoints plus the entries after them (a few minutes' worth, thanks to rollups)."""
    totals = {
        row["kind"]: int(row["total"] or 0)
        for row in Account.objects.filter(
            kind__in=[
                AccountKind.WALLET,
                AccountKind.COIN_DEBT,
                AccountKind.DIAMONDS_PENDING,
                AccountKind.DIAMONDS_AVAILABLE,
                AccountKind.DIAMONDS_IN_PAYOUT,
            ]
        )
        .values("kind")
        .annotate(total=Sum("balance"))
    }
    after_checkpoint = Entry.objects.filter(
        account__kind=AccountKind.DIAMONDS_PENDING,
    ).filter(
        Q(account__checkpoint_at__isnull=True) | Q(created_at__gte=F("account__checkpoint_at"))
    )
    totals[AccountKind.DIAMONDS_PENDING] = totals.get(AccountKind.DIAMONDS_PENDING, 0) + int(
        after_checkpoint.aggregate(total=Sum("amount"))["total"] or 0
    )
    return totals


def frozen_wallets() -> int:
    return Account.objects.filter(kind=AccountKind.WALLET, is_frozen=True).count()


# --- Payouts and reconciliation -------------------------------------------------------------


def payouts_open() -> dict | None:
    Payout = _model("payouts", "Payout")
    if Payout is None:
        return None
    rows = (
        Payout.objects.filter(status__in=["requested", "awaiting_approval", "processing"])
        .values("status", "amount_currency")
        .annotate(count=Count("id"), diamonds=Sum("diamonds"), amount=Sum("amount"))
    )
    summary: dict[str, dict[str, Any]] = {
        "due": {"count": 0, "diamonds": 0, "amount": Decimal(0)},
        "awaiting_approval": {"count": 0, "diamonds": 0, "amount": Decimal(0)},
    }
    for row in rows:
        bucket = summary["awaiting_approval" if row["status"] == "awaiting_approval" else "due"]
        bucket["count"] += int(row["count"])
        bucket["diamonds"] += int(row["diamonds"] or 0)
        bucket["amount"] += Decimal(row["amount"] or 0)
    return summary


def reconciliation_failures() -> list[dict]:
    """The kinds (payments, payouts) whose most recent finished reconciliation failed."""
    from wallets.models import ReconciliationRun

    failures = []
    for kind in ("payments", "payouts"):
        last = (
            ReconciliationRun.objects.filter(kind=kind, status__in=["done", "failed"])
            .order_by("-id")
            .first()
        )
        if last is not None and last.status == "failed":
            failures.append(
                {"kind": kind, "at": last.finished_at or last.started_at, "error": last.error}
            )
    return failures


def discrepancies_open() -> int | None:
    found = None
    for app_label, name in (("wallets", "Discrepancy"), ("payouts", "PayoutDiscrepancy")):
        model = _model(app_label, name)
        if model is not None:
            found = (found or 0) + model.objects.filter(status="open").count()
    return found


# --- Charts ---------------------------------------------------------------------------------


@dataclass
class BarChart:
    title: str
    unit: str
    width: int = 720
    height: int = 180
    bars: list[dict] = field(default_factory=list)
    maximum: float = 0
    total: float = 0
    axis_y: float = 0
    left: float = 0


def bar_chart(*, title: str, unit: str, days: list[date], values: dict[date, float]) -> BarChart:
    """Geometry for a server-rendered SVG bar chart, one bar per day (zero days included)."""
    chart = BarChart(title=title, unit=unit)
    plot_top, plot_bottom, left = 10, chart.height - 24, 48
    plot_height = plot_bottom - plot_top
    slot = (chart.width - left - 8) / max(len(days), 1)
    chart.maximum = max([float(values.get(d, 0)) for d in days] + [0])
    chart.total = sum(float(values.get(d, 0)) for d in days)
    scale = plot_height / chart.maximum if chart.maximum else 0
    for i, day in enumerate(days):
        value = float(values.get(day, 0))
        h = round(value * scale, 1)
        chart.bars.append(
            {
                "x": round(left + i * slot + slot * 0.15, 1),
                "y": round(plot_bottom - h, 1),
                "w": round(slot * 0.7, 1),
                "h": h,
                "day": day,
                "value": value,
                "label_x": round(left + i * slot + slot / 2, 1),
                "show_label": i % 5 == 0 or i == len(days) - 1,
            }
        )
    chart.axis_y, chart.left = plot_bottom, left
    return chart


# --- The dashboard --------------------------------------------------------------------------


def dashboard(*, today: date | None = None) -> dict:
    today = today or timezone.now().date()
    since = today - timedelta(days=DAYS - 1)
    days = [since + timedelta(days=i) for i in range(DAYS)]
    windows = {"today": today, "7 days": today - timedelta(days=6), "30 days": since}

    revenue = revenue_by_day(since=since)
    currencies = sorted({r["currency"] for r in revenue}) or ["USD"]
    revenue_table = []
    for label, start in windows.items():
        rows = [r for r in revenue if r["day"] >= start]
        revenue_table.append(
            {
                "label": label,
                "by_currency": [
                    sum((r["amount"] for r in rows if r["currency"] == c), Decimal(0))
                    for c in currencies
                ],
                "coins_sold": sum(r["coins"] for r in rows),
                "recharges": sum(r["count"] for r in rows),
            }
        )
    gifts = gifts_by_day(since=since)
    gift_table = []
    for label, start in windows.items():
        rows = [g for g in gifts if g["day"] >= start]
        gift_table.append(
            {
                "label": label,
                "count": sum(g["count"] for g in rows),
                "coins": sum(g["coins"] for g in rows),
            }
        )
    balances = balances_by_kind()
    revenue_charts = [
        bar_chart(
            title=f"Revenue per day, {currency}",
            unit=currency,
            days=days,
            values={r["day"]: float(r["amount"]) for r in revenue if r["currency"] == currency},
        )
        for currency in currencies
    ]
    gifts_chart = bar_chart(
        title="Coins gifted per day",
        unit="coins",
        days=days,
        values={g["day"]: g["coins"] for g in gifts},
    )
    return {
        "generated_at": timezone.now(),
        "currencies": currencies,
        "revenue_table": revenue_table,
        "gift_table": gift_table,
        "top_gifts": top_gifts(since=since),
        "coins_outstanding": balances.get(AccountKind.WALLET, 0),
        "coin_debt": -balances.get(AccountKind.COIN_DEBT, 0),
        "diamonds_pending": balances.get(AccountKind.DIAMONDS_PENDING, 0),
        "diamonds_available": balances.get(AccountKind.DIAMONDS_AVAILABLE, 0),
        "diamonds_in_payout": balances.get(AccountKind.DIAMONDS_IN_PAYOUT, 0),
        "payouts": payouts_open(),
        "discrepancies_open": discrepancies_open(),
        "frozen_wallets": frozen_wallets(),
        "revenue_charts": revenue_charts,
        "gifts_chart": gifts_chart,
    }


def dashboard_cached() -> dict:
    data = cache.get(CACHE_KEY)
    if data is None:
        data = dashboard()
        cache.set(CACHE_KEY, data, CACHE_SECONDS)
    return data
