"""Payout invariants for ``verify_ledger`` (set-based SQL, like the core checks)."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection

from creators.models import Creator
from payouts.models import OPEN_STATUSES, Payout, PayoutStatus
from wallets.models import Account, AccountKind, Entry, LedgerTransaction

LIMIT = 20
P = Payout._meta.db_table
A = Account._meta.db_table
E = Entry._meta.db_table
T = LedgerTransaction._meta.db_table
C = Creator._meta.db_table


def _rows(sql: str, params: list | tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def check_paid_out_matches_payouts() -> list[str]:
    (row,) = _rows(
        f"SELECT (SELECT COALESCE(SUM(e.amount), 0) FROM {E} e JOIN {A} a ON a.id = e.account_id "
        f"  WHERE a.kind = %s), "
        f"(SELECT COALESCE(SUM(diamonds), 0) FROM {P} WHERE status = %s)",
        [AccountKind.DIAMONDS_PAID_OUT.value, PayoutStatus.PAID.value],
    )
    ledger, payouts = row
    if ledger != payouts:
        return [f"diamonds paid out in the ledger {ledger} but paid payouts hold {payouts}"]
    return []


def check_one_paid_transaction_per_paid_payout() -> list[str]:
    rows = _rows(
        f"SELECT p.id, p.status, COUNT(t.id) FROM {P} p LEFT JOIN {T} t "
        f"  ON t.idempotency_key = 'payout-paid:' || p.id "
        f"GROUP BY p.id, p.status "
        f"HAVING (p.status = %s AND COUNT(t.id) <> 1) OR (p.status <> %s AND COUNT(t.id) > 0) "
        f"ORDER BY p.id LIMIT {LIMIT}",
        [PayoutStatus.PAID.value, PayoutStatus.PAID.value],
    )
    problems = [f"payout {p} ({s}) has {n} payout-paid transactions" for p, s, n in rows]
    orphans = _rows(
        f"SELECT t.idempotency_key FROM {T} t WHERE t.idempotency_key LIKE 'payout-paid:%%' "
        f"AND NOT EXISTS (SELECT 1 FROM {P} p WHERE t.idempotency_key = 'payout-paid:' || p.id) "
        f"LIMIT {LIMIT}"
    )
    problems += [f"{key} names no payout" for (key,) in orphans]
    return problems


def check_in_payout_matches_open_payouts() -> list[str]:
    placeholders = ", ".join(["%s"] * len(OPEN_STATUSES))
    rows = _rows(
        f"SELECT u.user_id, COALESCE(a.balance, 0), COALESCE(o.diamonds, 0) FROM "
        f"(SELECT user_id FROM {A} WHERE kind = %s "
        f" UNION SELECT c.user_id FROM {P} p JOIN {C} c ON c.id = p.creator_id) u "
        f"LEFT JOIN {A} a ON a.user_id = u.user_id AND a.kind = %s "
        f"LEFT JOIN (SELECT c.user_id, SUM(p.diamonds) AS diamonds FROM {P} p "
        f"  JOIN {C} c ON c.id = p.creator_id "
        f"  WHERE p.status IN ({placeholders}) GROUP BY c.user_id) o ON o.user_id = u.user_id "
        f"WHERE COALESCE(a.balance, 0) <> COALESCE(o.diamonds, 0) LIMIT {LIMIT}",
        [
            AccountKind.DIAMONDS_IN_PAYOUT.value,
            AccountKind.DIAMONDS_IN_PAYOUT.value,
            *[str(s) for s in OPEN_STATUSES],
        ],
    )
    return [
        f"user {u}: {balance} diamonds in payout but open payouts hold {open_}"
        for u, balance, open_ in rows
    ]


EXTRA_CHECKS: list[tuple[str, Callable[[], list[str]]]] = [
    ("diamonds paid out = diamonds of paid payouts", check_paid_out_matches_payouts),
    ("one payout-paid transaction per paid payout", check_one_paid_transaction_per_paid_payout),
    ("diamonds in payout = diamonds of open payouts", check_in_payout_matches_open_payouts),
]
