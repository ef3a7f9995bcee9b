"""Gift events mirror the ledger: what the business rows say equals what the entries say."""

from __future__ import annotations

from wallets.ledger_checks import LIMIT, _rows


def check_gift_diamonds() -> list[str]:
    """Diamonds of gift events == diamonds credited to pending accounts by gift transactions."""
    problems = [
        f"gift event {event}: {diamonds} diamonds but its transaction credits {credited}"
        for event, diamonds, credited in _rows(
            "SELECT g.id, g.diamonds, COALESCE(SUM(e.amount), 0) FROM gifts_giftevent g "
            "LEFT JOIN wallets_entry e ON e.transaction_id = g.transaction_id "
            " AND e.account_id IN (SELECT id FROM wallets_account WHERE kind = 'diamonds_pending') "
            "GROUP BY g.id, g.diamonds HAVING g.diamonds <> COALESCE(SUM(e.amount), 0) "
            f"ORDER BY g.id LIMIT {LIMIT}"
        )
    ]
    ((events, credited),) = _rows(
        "SELECT (SELECT COALESCE(SUM(diamonds), 0) FROM gifts_giftevent), "
        " (SELECT COALESCE(SUM(e.amount), 0) FROM wallets_entry e "
        "  JOIN wallets_ledgertransaction t ON t.id = e.transaction_id "
        "  JOIN wallets_account a ON a.id = e.account_id "
        "  WHERE t.kind = 'gift' AND a.kind = 'diamonds_pending')"
    )
    if events != credited:
        problems.append(f"gift events hold {events} diamonds but gifts credited {credited}")
    return problems


def check_gift_coins() -> list[str]:
    """Coins of gift events == coins_spent credited by gift transactions; one event per gift."""
    ((events, spent),) = _rows(
        "SELECT (SELECT COALESCE(SUM(coins), 0) FROM gifts_giftevent), "
        " (SELECT COALESCE(SUM(e.amount), 0) FROM wallets_entry e "
        "  JOIN wallets_ledgertransaction t ON t.id = e.transaction_id "
        "  JOIN wallets_account a ON a.id = e.account_id "
        "  WHERE t.kind = 'gift' AND a.kind = 'coins_spent')"
    )
    problems = []
    if events != spent:
        problems.append(f"gift events hold {events} coins but gifts spent {spent}")
    problems += [
        f"gift transaction {tx} has no gift event"
        for (tx,) in _rows(
            "SELECT t.id FROM wallets_ledgertransaction t WHERE t.kind = 'gift' AND NOT EXISTS "
            f"(SELECT 1 FROM gifts_giftevent g WHERE g.transaction_id = t.id) LIMIT {LIMIT}"
        )
    ]
    return problems


def check_gift_tallies() -> list[str]:
    """The leaderboard tallies add up to the gift events."""
    ((events, tallied),) = _rows(
        "SELECT (SELECT COALESCE(SUM(coins), 0) FROM gifts_giftevent), "
        " (SELECT COALESCE(SUM(coins), 0) FROM gifts_gifttally)"
    )
    if events != tallied:
        return [f"gift events hold {events} coins but leaderboard tallies {tallied}"]
    return []


EXTRA_CHECKS = [
    ("gift events' diamonds = diamonds credited by gifts", check_gift_diamonds),
    ("gift events' coins = coins spent by gifts", check_gift_coins),
    ("leaderboard tallies = gift events", check_gift_tallies),
]
