"""Payout invariants for ``verify_ledger`` (set-based SQL, like the core checks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection

from creators.models import Creator
from payouts.models import OPEN_STATUSES, Payout, PayoutStatementLine, PayoutStatus
from wallets.ledger_checks import _first
from wallets.models import Account, AccountKind, Entry, LedgerTransaction

P = Payout._meta.db_table
A = Account._meta.db_table
E = Entry._meta.db_table
T = LedgerTransaction._meta.db_table
C = Creator._meta.db_table
L = PayoutStatementLine._meta.db_table
VOID = [PayoutStatus.FAILED.value, PayoutStatus.CANCELLED.value]


def _rows(sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


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
    rows = _first(
        f"SELECT p.id, p.status, COUNT(t.id) FROM {P} p LEFT JOIN {T} t "
        "  ON t.idempotency_key = 'payout-paid:' || p.id "
        "GROUP BY p.id, p.status "
        "HAVING (p.status = %s AND COUNT(t.id) <> 1) OR (p.status <> %s AND COUNT(t.id) > 0) "
        "ORDER BY p.id",
        [PayoutStatus.PAID.value, PayoutStatus.PAID.value],
    )
    problems = [f"payout {p} ({s}) has {n} payout-paid transactions" for p, s, n in rows]
    orphans = _first(
        f"SELECT t.idempotency_key FROM {T} t WHERE t.idempotency_key LIKE 'payout-paid:%%' "
        f"AND NOT EXISTS (SELECT 1 FROM {P} p WHERE t.idempotency_key = 'payout-paid:' || p.id) "
    )
    problems += [f"{key} names no payout" for (key,) in orphans]
    return problems


def check_in_payout_matches_open_payouts() -> list[str]:
    placeholders = ", ".join(["%s"] * len(OPEN_STATUSES))
    # Per user, one GROUP BY over the in-payout balances and the open payouts side by side: no
    # join between two aggregated sets, which a row estimate of 1 where there are 100k turned
    # into a nested loop comparing 100k x 100k rows (issue #16).
    rows = _first(
        "SELECT user_id, SUM(balance), SUM(diamonds) FROM ("
        f" SELECT user_id, balance, 0 AS diamonds FROM {A} "
        "  WHERE kind = %s AND user_id IS NOT NULL "
        f" UNION ALL SELECT c.user_id, 0, p.diamonds FROM {P} p JOIN {C} c ON c.id = p.creator_id "
        f"  WHERE p.status IN ({placeholders})) x "
        "GROUP BY user_id HAVING SUM(balance) <> SUM(diamonds)",
        [AccountKind.DIAMONDS_IN_PAYOUT.value, *[str(s) for s in OPEN_STATUSES]],
    )
    return [
        f"user {u}: {balance} diamonds in payout but open payouts hold {open_}"
        for u, balance, open_ in rows
    ]


def check_statement_lines_sum_to_payouts() -> list[str]:
    """Every payout's statement lines add up to its diamonds (payouts/statements/allocation.py)."""
    rows = _first(
        f"SELECT p.id, p.diamonds, COALESCE(SUM(l.diamonds), 0) FROM {P} p "
        f"LEFT JOIN {L} l ON l.payout_id = p.id GROUP BY p.id, p.diamonds "
        "HAVING p.diamonds <> COALESCE(SUM(l.diamonds), 0) ORDER BY p.id"
    )
    return [f"payout {p}: {d} diamonds but its statement lines sum to {s}" for p, d, s in rows]


def check_statement_entries_allocated_once() -> list[str]:
    """No ledger entry is paid beyond its amount by payouts that stand (not failed/cancelled),
    and every line names an existing payout and an existing entry of that payout's creator with
    its true amount and transaction (a line's references carry no foreign-key constraint).

    The first query reads each entry's amount from its lines (``entry_diamonds``), not from
    the ledger: the second proves every line carries its entry's true amount, and when one
    does not the check fails anyway, so the verdict is the same as joining the entries, and
    the check hashes the ledger's millions of entries once instead of twice (issue #16).
    """
    rows = _first(
        f"SELECT l.entry_id, l.entry_diamonds, SUM(l.diamonds) FROM {L} l "
        f"JOIN {P} p ON p.id = l.payout_id "
        "WHERE p.status NOT IN (%s, %s) GROUP BY l.entry_id, l.entry_diamonds "
        "HAVING (l.entry_diamonds > 0 "
        " AND (SUM(l.diamonds) > l.entry_diamonds OR SUM(l.diamonds) < 0)) "
        "OR (l.entry_diamonds < 0 AND SUM(l.diamonds) <> l.entry_diamonds)",
        VOID,
    )
    problems = [f"entry {e} of {a} diamonds is allocated {s} by payouts" for e, a, s in rows]
    rows = _first(
        f"SELECT l.id, p.id IS NULL FROM {L} l LEFT JOIN {P} p ON p.id = l.payout_id "
        f"LEFT JOIN {C} c ON c.id = p.creator_id LEFT JOIN {E} e ON e.id = l.entry_id "
        f"LEFT JOIN {A} a ON a.id = e.account_id "
        "WHERE p.id IS NULL OR e.id IS NULL OR a.user_id <> c.user_id "
        "OR e.amount <> l.entry_diamonds OR e.transaction_id <> l.transaction_id"
    )
    problems += [
        f"statement line {i} names no payout"
        if orphan
        else f"statement line {i} does not match its ledger entry"
        for i, orphan in rows
    ]
    return problems


EXTRA_CHECKS: list[tuple[str, Callable[[], list[str]]]] = [
    ("diamonds paid out = diamonds of paid payouts", check_paid_out_matches_payouts),
    ("one payout-paid transaction per paid payout", check_one_paid_transaction_per_paid_payout),
    ("diamonds in payout = diamonds of open payouts", check_in_payout_matches_open_payouts),
    ("payout statement lines sum to each payout", check_statement_lines_sum_to_payouts),
    ("statement lines allocate each entry at most once", check_statement_entries_allocated_once),
]
