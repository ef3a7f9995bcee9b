"""Membership money mirrors the ledger (run by ``verify_ledger`` after the core checks)."""

from __future__ import annotations

from wallets.ledger_checks import _first


def check_membership_transactions() -> list[str]:
    """Each membership transaction debits the payer what its charge rows say and credits the
    creator's pending diamonds what they say; none is without charge rows."""
    problems = [
        f"membership transaction {tx}: charges say {coins} coins / {diamonds} diamonds, "
        f"entries say {debited} / {credited}"
        for tx, coins, diamonds, debited, credited in _first(
            # Each membership transaction, its charges and its entries side by side in one
            # GROUP BY: no join between aggregated sets, which stale statistics (100k renewals
            # the planner has not seen) turned into a nested loop over both (issue #16).
            "SELECT tx, CASE WHEN SUM(n) > 0 THEN SUM(coins) END, "
            " CASE WHEN SUM(n) > 0 THEN SUM(diamonds) END, SUM(debited), SUM(credited) FROM ("
            " SELECT t.id AS tx, 1 AS is_tx, 0 AS n, 0 AS coins, 0 AS diamonds, 0 AS debited, "
            "  0 AS credited FROM wallets_ledgertransaction t WHERE t.kind = 'membership' "
            " UNION ALL SELECT c.transaction_id, 0, 1, c.coins, c.diamonds, 0, 0 "
            "  FROM memberships_membershipcharge c "
            " UNION ALL SELECT e.transaction_id, 0, 0, 0, 0, "
            "  CASE WHEN a.kind = 'wallet' THEN -e.amount ELSE 0 END, "
            "  CASE WHEN a.kind = 'diamonds_pending' THEN e.amount ELSE 0 END "
            "  FROM wallets_entry e JOIN wallets_account a ON a.id = e.account_id "
            "  JOIN wallets_ledgertransaction x ON x.id = e.transaction_id "
            "  WHERE x.kind = 'membership') m "
            "GROUP BY tx HAVING MAX(is_tx) = 1 AND (SUM(n) = 0 "
            "  OR SUM(coins) <> SUM(debited) OR SUM(diamonds) <> SUM(credited)) "
            "ORDER BY tx"
        )
    ]
    problems += [
        f"membership charge {charge} points at transaction {tx} of kind {kind}"
        for charge, tx, kind in _first(
            "SELECT c.id, t.id, t.kind FROM memberships_membershipcharge c "
            "JOIN wallets_ledgertransaction t ON t.id = c.transaction_id "
            "WHERE t.kind <> 'membership'"
        )
    ]
    return problems


def check_months_paid_once() -> list[str]:
    """A membership's month count equals its charges, and no two charges cover the same time
    (one debit per period)."""
    problems = [
        f"membership {m}: {months} months but {charges} charges"
        for m, months, charges in _first(
            "SELECT m.id, m.months, COUNT(c.id) FROM memberships_membership m "
            "LEFT JOIN memberships_membershipcharge c ON c.membership_id = m.id "
            "GROUP BY m.id, m.months HAVING m.months <> COUNT(c.id)"
        )
    ]
    problems += [
        f"membership {m}: charges {a} and {b} pay overlapping periods"
        for m, a, b in _first(
            "SELECT a.membership_id, a.id, b.id FROM memberships_membershipcharge a "
            "JOIN memberships_membershipcharge b ON b.membership_id = a.membership_id "
            " AND b.id > a.id AND b.period_start < a.period_end AND a.period_start < b.period_end "
        )
    ]
    return problems


EXTRA_CHECKS = [
    ("membership charges = membership transactions", check_membership_transactions),
    ("each membership month paid once", check_months_paid_once),
]
