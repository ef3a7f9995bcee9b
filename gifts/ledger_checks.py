"""Gift events mirror the ledger: what the business rows say equals what the entries say."""

from __future__ import annotations

from wallets.ledger_checks import _first, _rows

# Gift events whose coins were held for an all-or-nothing goal: their own transaction moves
# the coins to the goal holding account, and the goal's settlement pays them (met) or refunds
# them (missed).
HELD = "g.goal_id IN (SELECT id FROM gifts_goal WHERE all_or_nothing)"
# What gifts credited: each gift's own transaction, plus the settlements of met goals.
PAID_EVENTS = f"NOT ({HELD}) OR g.goal_id IN (SELECT id FROM gifts_goal WHERE status = 'met')"


def check_gift_diamonds() -> list[str]:
    """Diamonds of gift events == diamonds credited to pending accounts by gift transactions
    (and by met all-or-nothing goals' settlements)."""
    problems = [
        f"gift event {event}: {diamonds} diamonds but its transaction credits {credited}"
        for event, diamonds, credited in _first(
            f"SELECT g.id, CASE WHEN {HELD} THEN 0 ELSE g.diamonds END, "
            "COALESCE(SUM(e.amount), 0) FROM gifts_giftevent g "
            "LEFT JOIN wallets_entry e ON e.transaction_id = g.transaction_id "
            " AND e.account_id IN (SELECT id FROM wallets_account WHERE kind = 'diamonds_pending') "
            "GROUP BY g.id, g.diamonds, g.goal_id "
            f"HAVING CASE WHEN {HELD} THEN 0 ELSE g.diamonds END <> COALESCE(SUM(e.amount), 0) "
            "ORDER BY g.id"
        )
    ]
    ((events, credited),) = _rows(
        f"SELECT (SELECT COALESCE(SUM(diamonds), 0) FROM gifts_giftevent g WHERE {PAID_EVENTS}), "
        " (SELECT COALESCE(SUM(e.amount), 0) FROM wallets_entry e "
        "  JOIN wallets_ledgertransaction t ON t.id = e.transaction_id "
        "  JOIN wallets_account a ON a.id = e.account_id "
        "  WHERE t.kind IN ('gift', 'goal_met') AND a.kind = 'diamonds_pending')"
    )
    if events != credited:
        problems.append(f"gift events hold {events} diamonds but gifts credited {credited}")
    return problems


def check_gift_coins() -> list[str]:
    """Coins of gift events == coins_spent credited by gift transactions (and met goals'
    settlements); one event per gift."""
    # The platform's coins_spent account by its id, written into the query: one account holds
    # a fifth of all entries, which the planner can only see (and hash-join them) when it knows
    # which account; behind a join it guesses an average account's few hundred and probes
    # the journal once per entry (2M probes on the bench's ledger, issue #16).
    spent_ids = [str(i) for (i,) in _rows(
        "SELECT id FROM wallets_account WHERE kind = 'coins_spent'"
    )]  # fmt: skip
    ((events, spent),) = _rows(
        f"SELECT (SELECT COALESCE(SUM(coins), 0) FROM gifts_giftevent g WHERE {PAID_EVENTS}), "
        " (SELECT COALESCE(SUM(e.amount), 0) FROM wallets_entry e "
        "  JOIN wallets_ledgertransaction t ON t.id = e.transaction_id "
        "  WHERE t.kind IN ('gift', 'goal_met') "
        f"  AND e.account_id IN ({', '.join(spent_ids) or 'NULL'}))"
    )
    problems = []
    if events != spent:
        problems.append(f"gift events hold {events} coins but gifts spent {spent}")
    problems += [
        f"gift transaction {tx} has no gift event"
        for (tx,) in _first(
            "SELECT t.id FROM wallets_ledgertransaction t WHERE t.kind = 'gift' AND NOT EXISTS "
            "(SELECT 1 FROM gifts_giftevent g WHERE g.transaction_id = t.id)"
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


def check_goal_holding() -> list[str]:
    """The goal holding account == the coins of gifts toward open all-or-nothing goals, and
    each settled one moved exactly its gifts' coins out of it, once."""
    ((held, open_goals),) = _rows(
        "SELECT (SELECT COALESCE(SUM(e.amount), 0) FROM wallets_entry e "
        "  JOIN wallets_account a ON a.id = e.account_id WHERE a.kind = 'goal_holding'), "
        " (SELECT COALESCE(SUM(g.coins), 0) FROM gifts_giftevent g JOIN gifts_goal o "
        "  ON o.id = g.goal_id WHERE o.all_or_nothing AND o.status = 'open')"
    )
    problems = []
    if held != open_goals:
        problems.append(
            f"the goal holding account holds {held} coins but open all-or-nothing goals "
            f"have {open_goals}"
        )
    problems += [
        f"goal {goal} ({status}): its gifts hold {coins} coins but its settlement moved {moved}"
        for goal, status, coins, moved in _first(
            "SELECT o.id, o.status, "
            " (SELECT COALESCE(SUM(g.coins), 0) FROM gifts_giftevent g WHERE g.goal_id = o.id) "
            "  AS coins, "
            " (SELECT COALESCE(-SUM(e.amount), 0) FROM wallets_entry e JOIN wallets_account a "
            "  ON a.id = e.account_id WHERE a.kind = 'goal_holding' "
            "  AND e.transaction_id = o.settlement_id) AS moved "
            "FROM gifts_goal o WHERE o.all_or_nothing AND o.status <> 'open' "
            " AND (SELECT COALESCE(SUM(g.coins), 0) FROM gifts_giftevent g WHERE g.goal_id = o.id)"
            "  <> (SELECT COALESCE(-SUM(e.amount), 0) FROM wallets_entry e "
            "  JOIN wallets_account a ON a.id = e.account_id WHERE a.kind = 'goal_holding' "
            "  AND e.transaction_id = o.settlement_id) ORDER BY o.id"
        )
    ]
    problems += [
        f"goal {goal} has {n} settlement transactions"
        for goal, n in _first(
            "SELECT reference, COUNT(*) "
            "FROM wallets_ledgertransaction WHERE kind IN ('goal_met', 'goal_refund') "
            "GROUP BY 1 HAVING COUNT(*) > 1 "
        )
    ]
    return problems


EXTRA_CHECKS = [
    ("gift events' diamonds = diamonds credited by gifts", check_gift_diamonds),
    ("gift events' coins = coins spent by gifts", check_gift_coins),
    ("leaderboard tallies = gift events", check_gift_tallies),
    ("goal holding = gifts toward open all-or-nothing goals", check_goal_holding),
]
