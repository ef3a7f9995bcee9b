"""The ledger's invariants as set-based SQL (``verify_ledger``). Each returns (name, problems)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from wallets.models import NON_NEGATIVE_KINDS, NON_POSITIVE_KINDS

LIMIT = 20


def _rows(sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def _first(sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The first ``LIMIT`` rows of a query that looks for what breaks an invariant, planned for
    reading everything.

    On a healthy ledger such a query finds nothing, so it always reads its tables whole. A plain
    ``LIMIT`` makes PostgreSQL plan for stopping after a few rows (nested loops, scans in index
    order), as if rows that break the invariant were plentiful: on the bench's 100k-creator
    ledger one such plan compared 100k x 100k rows for 6 minutes (issue #16). A ``MATERIALIZED``
    CTE is planned for all of its rows (hash joins), and the outer ``LIMIT`` still stops reading
    it after ``LIMIT`` rows when the ledger is broken.
    """
    return _rows(f"WITH bad AS MATERIALIZED ({sql}) SELECT * FROM bad LIMIT {LIMIT}", params)


@contextmanager
def _without_nested_loops() -> Iterator[None]:
    """On PostgreSQL, the block's statements are planned without nested-loop joins (for this
    transaction only, the previous setting put back after). For a check that joins every row
    of a big table to a small one and aggregates: the planner's estimate favours probing the
    small table once per row (a memoized nested loop in index order), measured twice as slow
    as hashing it on the bench's 8.5M entries (issue #16)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_nestloop')")
        (before,) = cursor.fetchone()
        cursor.execute("SELECT set_config('enable_nestloop', 'off', true)")
        yield  # on an error the rollback puts the setting back
        cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [before])


def _in(values: Iterable[object]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def check_transactions_balanced() -> list[str]:
    with _without_nested_loops():  # every entry joined to its account: hash the accounts
        unbalanced = _first(
            "SELECT e.transaction_id, a.unit, SUM(e.amount) FROM wallets_entry e "
            "JOIN wallets_account a ON a.id = e.account_id "
            "GROUP BY e.transaction_id, a.unit HAVING SUM(e.amount) <> 0 "
            "ORDER BY 1"
        )
    problems = [
        f"transaction {tx} does not sum to zero in {unit}: {total:+d}"
        for tx, unit, total in unbalanced
    ]
    problems += [
        f"transaction {tx} has no entries"
        for (tx,) in _first(
            "SELECT t.id FROM wallets_ledgertransaction t WHERE NOT EXISTS "
            "(SELECT 1 FROM wallets_entry e WHERE e.transaction_id = t.id)"
        )
    ]
    return problems


def check_balances_match_entries() -> list[str]:
    cold = _first(
        "SELECT a.id, a.balance, COALESCE(s.total, 0) FROM wallets_account a LEFT JOIN "
        "(SELECT account_id, SUM(amount) AS total FROM wallets_entry GROUP BY account_id) s "
        "ON s.account_id = a.id WHERE NOT a.is_hot AND a.balance <> COALESCE(s.total, 0) "
    )
    problems = [f"account {a}: balance {b} but entries sum to {s}" for a, b, s in cold]
    # The last entry of each account by one index probe (entry_account_newest) per account, in
    # correlated subqueries: no plan can turn them into a join that hashes every entry.
    last = _first(
        "SELECT id, balance, last_after FROM (SELECT a.id, a.balance, "
        " (SELECT x.balance_after FROM wallets_entry x WHERE x.account_id = a.id "
        "  ORDER BY x.id DESC LIMIT 1) AS last_after, "
        " EXISTS (SELECT 1 FROM wallets_entry y WHERE y.account_id = a.id) AS used "
        " FROM wallets_account a WHERE NOT a.is_hot) s "
        "WHERE used AND (last_after IS NULL OR last_after <> balance)"
    )
    problems += [f"account {a}: balance {b} but last balance_after {e}" for a, b, e in last]
    hot = _first(
        "SELECT a.id, a.balance, COALESCE(s.total, 0) FROM wallets_account a LEFT JOIN "
        "(SELECT e.account_id, SUM(e.amount) AS total FROM wallets_entry e "
        " JOIN wallets_account h ON h.id = e.account_id "
        " WHERE h.is_hot AND h.checkpoint_at IS NOT NULL AND e.created_at < h.checkpoint_at "
        " GROUP BY e.account_id) s ON s.account_id = a.id "
        "WHERE a.is_hot AND a.balance <> COALESCE(s.total, 0) "
    )
    problems += [
        f"hot account {a}: checkpoint {b} but entries before it sum to {s}" for a, b, s in hot
    ]
    return problems


def check_signs() -> list[str]:
    rows = _first(
        "SELECT a.id, a.kind, SUM(e.amount) FROM wallets_account a "
        "JOIN wallets_entry e ON e.account_id = a.id "
        f"WHERE a.kind IN ({_in(NON_NEGATIVE_KINDS)}) "
        "GROUP BY a.id, a.kind HAVING SUM(e.amount) < 0"
    )
    rows += _first(
        "SELECT a.id, a.kind, SUM(e.amount) FROM wallets_account a "
        "JOIN wallets_entry e ON e.account_id = a.id "
        f"WHERE a.kind IN ({_in(NON_POSITIVE_KINDS)}) "
        "GROUP BY a.id, a.kind HAVING SUM(e.amount) > 0"
    )
    return [f"account {a} ({kind}) has the wrong sign: {total}" for a, kind, total in rows]


def check_units_sum_to_zero() -> list[str]:
    return [
        f"all {unit} entries sum to {total:+d}, not zero"
        for unit, total in _rows(
            "SELECT a.unit, SUM(e.amount) FROM wallets_entry e "
            "JOIN wallets_account a ON a.id = e.account_id "
            "GROUP BY a.unit HAVING SUM(e.amount) <> 0"
        )
    ]


def check_idempotency_keys() -> list[str]:
    return [
        f"idempotency key {key!r} has {n} transactions"
        for key, n in _first(
            "SELECT idempotency_key, COUNT(*) FROM wallets_ledgertransaction "
            "GROUP BY idempotency_key HAVING COUNT(*) > 1"
        )
    ]


def check_coins_outstanding() -> list[str]:
    """Coins held by users = coins issued (recharges, grants) − spent − clawed back."""
    (row,) = _rows(
        "SELECT "
        " COALESCE(SUM(CASE WHEN a.kind IN ('wallet', 'coin_debt') THEN e.amount END), 0), "
        " COALESCE(SUM(CASE WHEN a.kind IN ('coin_issuance', 'adjustments', 'coins_spent', "
        "   'coin_write_offs', 'goal_holding') THEN e.amount END), 0) "
        "FROM wallets_entry e JOIN wallets_account a ON a.id = e.account_id WHERE a.unit = 'COIN'"
    )
    held, platform = row
    if held != -platform:
        return [f"users hold {held} coins but the platform accounts say {-platform}"]
    return []


CORE_CHECKS: list[tuple[str, Callable[[], list[str]]]] = [
    ("transactions sum to zero per unit", check_transactions_balanced),
    ("balances equal their entries", check_balances_match_entries),
    ("no wallet or earnings account negative", check_signs),
    ("coins outstanding = issued - spent - clawed back", check_coins_outstanding),
    ("one transaction per idempotency key", check_idempotency_keys),
    ("every unit sums to zero", check_units_sum_to_zero),
]


def all_checks() -> list[tuple[str, Callable[[], list[str]]]]:
    """Core checks plus every local app's ``ledger_checks.EXTRA_CHECKS``."""
    checks = list(CORE_CHECKS)
    for app in settings.LOCAL_APPS:
        try:
            module = import_module(f"{app}.ledger_checks")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.ledger_checks":
                raise
            continue
        checks += getattr(module, "EXTRA_CHECKS", [])
    return checks


def statistics_refresh() -> list[str]:
    """ANALYZE (PostgreSQL only) the tables that changed since their planner statistics were
    taken by more than autovacuum's own threshold (50 rows + 10 %): what autovacuum would do on
    its next round, done now. Returns the tables analyzed.

    A bulk write (a 100k payout batch: 2M statement lines, 100k new in-payout accounts) right
    before the checks leaves the planner with row counts and value lists from before it, and
    an estimate of 1 row where there are 100,000 picks nested loops over both (issue #16).
    Measured on the bench's 100k-creator ledger after the batch: 3.6 s for the five tables it
    had changed; nothing to do (one catalog query) when autovacuum has caught up.
    """
    if connection.vendor != "postgresql":
        return []
    stale = _rows(
        "SELECT format('%%I.%%I', s.schemaname, s.relname) FROM pg_stat_user_tables s "
        "JOIN pg_class c ON c.oid = s.relid WHERE s.schemaname = current_schema() "
        "AND s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0) ORDER BY 1"
    )
    with connection.cursor() as cursor:
        for (table,) in stale:
            cursor.execute(f"ANALYZE {table}")
    return [table for (table,) in stale]


def run_checks_timed() -> list[tuple[str, list[str], float]]:
    """Every check (after ``statistics_refresh``): (name, problems, seconds it took)."""
    statistics_refresh()
    results = []
    for name, func in all_checks():
        started = time.perf_counter()
        problems = func()
        results.append((name, problems, time.perf_counter() - started))
    return results


def run_checks() -> list[tuple[str, list[str]]]:
    return [(name, problems) for name, problems, _seconds in run_checks_timed()]


# --- Recharges (wallets' own EXTRA_CHECKS) --------------------------------------------------


def check_issuance_matches_recharges() -> list[str]:
    """−coin issuance = coins of credited recharges − coins clawed back by refunds/disputes.

    Grants go to the adjustments account, so the coin issuance account is recharges only.
    """
    (issued,) = _rows(
        "SELECT COALESCE(SUM(e.amount), 0) FROM wallets_entry e "
        "JOIN wallets_account a ON a.id = e.account_id WHERE a.kind = 'coin_issuance'"
    )[0]
    (credited,) = _rows(
        "SELECT COALESCE(SUM(coins - coins_refunded), 0) FROM wallets_recharge "
        "WHERE status IN ('succeeded', 'refunded', 'disputed')"
    )[0]
    if -issued != credited:
        return [f"coin issuance says {-issued} coins sold, recharges say {credited}"]
    return []


def check_one_credit_per_recharge() -> list[str]:
    missing = _first(
        "SELECT r.id, r.payment_intent FROM wallets_recharge r "
        "WHERE r.status IN ('succeeded', 'refunded', 'disputed') AND NOT EXISTS ("
        " SELECT 1 FROM wallets_ledgertransaction t "
        " WHERE t.idempotency_key = 'recharge:' || r.payment_intent AND t.kind = 'recharge') "
    )
    problems = [f"recharge {rid} ({pi}) succeeded without a credit" for rid, pi in missing]
    stray = _first(
        "SELECT t.id, t.idempotency_key FROM wallets_ledgertransaction t "
        "WHERE t.kind = 'recharge' AND NOT EXISTS (SELECT 1 FROM wallets_recharge r "
        " WHERE 'recharge:' || r.payment_intent = t.idempotency_key "
        " AND r.status IN ('succeeded', 'refunded', 'disputed')) "
    )
    problems += [f"recharge credit {tx} ({key}) has no succeeded recharge" for tx, key in stray]
    return problems


def check_chargeback_allocations() -> list[str]:
    """Each creator's chargeback transaction moves exactly what its allocations say: the
    clawed diamonds out of pending, the absorbed ones into chargeback losses; and no gift's
    coins are traced (by live allocations) more than once."""
    problems = [
        f"chargeback transaction {tx}: allocations say {clawed} clawed / {absorbed} absorbed, "
        f"entries say {pending} / {losses}"
        for tx, clawed, absorbed, pending, losses in _first(
            "SELECT a.transaction_id, SUM(a.diamonds_clawed), SUM(a.diamonds_absorbed), "
            " (SELECT COALESCE(-SUM(e.amount), 0) FROM wallets_entry e JOIN wallets_account x "
            "  ON x.id = e.account_id WHERE e.transaction_id = a.transaction_id "
            "  AND x.kind = 'diamonds_pending'), "
            " (SELECT COALESCE(-SUM(e.amount), 0) FROM wallets_entry e JOIN wallets_account x "
            "  ON x.id = e.account_id WHERE e.transaction_id = a.transaction_id "
            "  AND x.kind = 'chargeback_losses') "
            "FROM wallets_chargebackallocation a GROUP BY a.transaction_id "
            "HAVING SUM(a.diamonds_clawed) <> (SELECT COALESCE(-SUM(e.amount), 0) "
            "  FROM wallets_entry e JOIN wallets_account x ON x.id = e.account_id "
            "  WHERE e.transaction_id = a.transaction_id AND x.kind = 'diamonds_pending') "
            "OR SUM(a.diamonds_absorbed) <> (SELECT COALESCE(-SUM(e.amount), 0) "
            "  FROM wallets_entry e JOIN wallets_account x ON x.id = e.account_id "
            "  WHERE e.transaction_id = a.transaction_id AND x.kind = 'chargeback_losses') "
        )
    ]
    problems += [
        f"gift transaction {tx}: {traced} coins traced by chargebacks but it spent {spent}"
        for tx, traced, spent in _first(
            "SELECT a.gift_transaction_id, SUM(a.coins), "
            " (SELECT COALESCE(-SUM(e.amount), 0) FROM wallets_entry e JOIN wallets_account x "
            "  ON x.id = e.account_id WHERE e.transaction_id = a.gift_transaction_id "
            "  AND x.kind = 'wallet') AS spent "
            "FROM wallets_chargebackallocation a WHERE NOT a.reversed "
            "GROUP BY a.gift_transaction_id HAVING SUM(a.coins) > (SELECT COALESCE(-SUM(e.amount), 0) "
            "  FROM wallets_entry e JOIN wallets_account x ON x.id = e.account_id "
            "  WHERE e.transaction_id = a.gift_transaction_id AND x.kind = 'wallet') "
        )
    ]
    return problems


# This app's own checks (every app's ``ledger_checks.EXTRA_CHECKS`` runs after the core).
EXTRA_CHECKS: list[tuple[str, Callable[[], list[str]]]] = [
    ("coin issuance = credited recharges - coins clawed back", check_issuance_matches_recharges),
    ("one credit per succeeded recharge", check_one_credit_per_recharge),
    ("chargeback allocations = clawback entries", check_chargeback_allocations),
]
