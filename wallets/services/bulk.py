"""Set-based ledger writes for the bulk jobs (payout batch, earnings release), PostgreSQL only.

The same transactions ``ledger_post`` writes one by one, written a chunk at a time: one
``INSERT … SELECT FROM unnest(…)`` for the journal rows, one ``UPDATE … FROM`` for the cold
balances and one insert for the entries, whatever the chunk's size. Every transaction is a
two-leg move of one unit (``debit`` → ``credit``), which is all the bulk jobs post.

The caller locks the accounts it debits first (``accounts_lock``: id order, ``FOR NO KEY
UPDATE``, which a gift's foreign-key check on the same row does not wait for) and computes the
amounts under that lock, in the same database transaction. Idempotency is the journal key, as
for ``ledger_post``: a key already applied is skipped (``ON CONFLICT DO NOTHING``), its move is
not applied twice. The non-negative CHECK constraints stay behind the cold balances.
"""

from __future__ import annotations

import json
import operator
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db import connection, connections
from django.utils import timezone

from wallets.models import Account

T = TypeVar("T")


@dataclass(frozen=True)
class Move:
    """One ledger transaction: ``amount`` (> 0) from account ``debit`` to account ``credit``."""

    idempotency_key: str
    debit: int
    credit: int
    amount: int
    memo: str = ""
    reference: str = ""


@dataclass(frozen=True)
class LockedAccount:
    id: int
    user_id: int | None
    kind: str
    balance: int
    is_hot: bool


def _int_text(value: int | Decimal | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, Decimal):  # an integral SUM() read back from PostgreSQL
        if value != value.to_integral_value():
            raise ValueError(f"{value} is not an integer")
        return str(int(value))
    return str(operator.index(value))


def int_array(values: Iterable[int | Decimal | None]) -> str:
    """``values`` as one PostgreSQL array literal (``None`` is NULL), for a ``%s::bigint[]``
    parameter. psycopg adapts a Python list element by element (~1 µs each, a regex per
    element): a chunk of the payout batch passes ~150,000 ids and amounts, 2-3 s of Python CPU
    over a 100,000-creator batch; one ``join`` costs a fraction of that. Only integers go in
    (integral ``Decimal`` sums too; anything else raises), so the literal cannot be malformed."""
    return "{" + ",".join(map(_int_text, values)) + "}"


def text_rows_json(rows: Iterable[tuple[str, ...]]) -> str:
    """Rows of strings as one JSON array of arrays, for ``json_array_elements(%s::json)``
    (``r->>0``, ``r->>1``, …): the text counterpart of ``int_array`` (the C JSON encoder
    instead of psycopg's per-element quoting). Order is kept: PostgreSQL returns the elements
    in array order."""
    return json.dumps([list(r) for r in rows], ensure_ascii=False)


def bulk_supported() -> bool:
    """The set-based paths need PostgreSQL (``unnest``, ``FOR NO KEY UPDATE``, ``ON CONFLICT``);
    SQLite (``make run``) keeps the per-item services."""
    return connection.vendor == "postgresql"


def accounts_lock(*, account_ids: list[int]) -> dict[int, LockedAccount]:
    """Lock ``account_ids`` in id order (``FOR NO KEY UPDATE``) and return their rows.

    Must run inside ``transaction.atomic``. Id order is the order ``ledger_post`` locks in, so
    a bulk chunk and a single posting never deadlock. ``balance`` is the row's column (the
    live balance for cold accounts, the checkpoint for hot ones).
    """
    if not account_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, user_id, kind, balance, is_hot FROM {Account._meta.db_table} "  # noqa: S608 (the model's table; values are parameters)
            "WHERE id = ANY(%s::bigint[]) ORDER BY id FOR NO KEY UPDATE",
            [int_array(sorted(set(account_ids)))],
        )
        return {row[0]: LockedAccount(*row) for row in cursor.fetchall()}


def ledger_move_bulk(
    *, kind: str, moves: list[Move], actor_id: int | None = None, now: datetime | None = None
) -> dict[str, int]:
    """Post ``moves`` set-based; returns ``{idempotency key: transaction id}`` of those written.

    Must run inside ``transaction.atomic``, after ``accounts_lock`` of every account debited.
    A cold account may appear in at most one move of a call (its entry's ``balance_after`` is
    the balance the single ``UPDATE`` returns). Raises ``IntegrityError`` (and the caller's
    transaction rolls back) if a cold balance would break its sign rule.
    """
    if not moves:
        return {}
    if any(m.amount <= 0 or m.debit == m.credit for m in moves):
        raise ValueError("every bulk move needs a positive amount between two accounts")
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wallets_ledgertransaction "
            "(kind, idempotency_key, actor_id, memo, reference, reverses_id, created_at) "
            "SELECT %s, t.r->>0, %s, t.r->>1, t.r->>2, NULL, %s "
            "FROM json_array_elements(%s::json) AS t(r) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key",
            [
                kind,
                actor_id,
                now,
                text_rows_json((m.idempotency_key, m.memo[:500], m.reference[:100]) for m in moves),
            ],
        )
        written = {key: tx_id for tx_id, key in cursor.fetchall()}
        todo = [m for m in moves if m.idempotency_key in written]
        if not todo:
            return written

        deltas: dict[int, int] = defaultdict(int)
        uses: dict[int, int] = defaultdict(int)
        for m in todo:
            deltas[m.debit] -= m.amount
            deltas[m.credit] += m.amount
            uses[m.debit] += 1
            uses[m.credit] += 1
        ids = sorted(deltas)
        cursor.execute(
            f"UPDATE {Account._meta.db_table} a SET balance = a.balance + d.delta "  # noqa: S608 (the model's table; values are parameters)
            "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) "
            # ``a.id = ANY``: read the accounts by index (a bare join hashed every account).
            "WHERE a.id = d.id AND a.id = ANY(%s::bigint[]) AND NOT a.is_hot "
            "RETURNING a.id, a.balance",
            [int_array(ids), int_array(deltas[i] for i in ids), int_array(ids)],
        )
        balances = dict(cursor.fetchall())
        shared = [i for i in balances if uses[i] > 1]
        if shared:
            raise ValueError(f"cold accounts {shared[:5]} appear in more than one bulk move")

        tx_ids, account_ids, amounts, after = [], [], [], []
        for m in todo:
            tx_id = written[m.idempotency_key]
            for account_id, amount in sorted(((m.debit, -m.amount), (m.credit, m.amount))):
                tx_ids.append(tx_id)
                account_ids.append(account_id)
                amounts.append(amount)
                after.append(balances.get(account_id))
        cursor.execute(
            "INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after, "
            "created_at) SELECT t, a, x, b, %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) "
            "AS e(t, a, x, b)",
            [now, int_array(tx_ids), int_array(account_ids), int_array(amounts), int_array(after)],
        )
    return written


def chunks_in_parallel(
    *,
    next_chunk: Callable[[int], list[int]],
    work: Callable[[list[int]], T],
    workers: int,
) -> Iterator[tuple[list[int], T]]:
    """Run ``work`` over the chunks ``next_chunk(after)`` yields (ids ascending; ``after`` is the
    last id of the chunk before, 0 first; an empty list ends it), ``workers`` chunks at a time,
    each on a database connection of its own; yields ``(chunk, result)`` as chunks finish.

    For jobs whose chunks share no locked row (disjoint creators), so two chunks never wait on
    each other: on two cores, one chunk's Python and the other's PostgreSQL work overlap. Each
    ``work`` call must be its own transaction (a crash keeps the chunks committed before it).
    Runs the chunks one after the other, on the caller's connection, when ``workers`` is 1, on
    SQLite, or inside a transaction (a test's, or a caller's: other connections could not see
    its rows). An error in one chunk stops new chunks, lets the running ones finish, and is
    raised.
    """
    inline = workers <= 1 or not bulk_supported() or connection.in_atomic_block
    if inline:
        after = 0
        while ids := next_chunk(after):
            yield ids, work(ids)
            after = ids[-1]
        return

    # ``workers`` long-lived threads, each on one database connection from its first chunk to
    # its last, closed when it runs out of chunks: a new backend per chunk started with cold
    # catalog and plan caches (~0.1-0.2 s of PostgreSQL CPU per 5,000-creator payout chunk).
    lock = threading.Lock()
    finished: queue.Queue[tuple[list[int], bool, Any]] = queue.Queue()
    state: dict[str, Any] = {"after": 0, "exhausted": False, "stop": False}

    def take() -> list[int]:
        with lock:
            if state["exhausted"] or state["stop"]:
                return []
            ids = next_chunk(state["after"])
            if not ids:
                state["exhausted"] = True
                return []
            state["after"] = ids[-1]
            return ids

    def worker() -> None:
        try:
            while ids := take():
                # A connection an earlier chunk broke is replaced, not reused.
                if connection.connection is not None and connection.errors_occurred:
                    if connection.is_usable():
                        connection.errors_occurred = False
                    else:
                        connection.close()
                try:
                    finished.put((ids, True, work(ids)))
                except BaseException as exc:  # handed to the caller's thread, raised there
                    with lock:
                        state["stop"] = True
                    finished.put((ids, False, exc))
        finally:
            connections.close_all()  # this thread's connections only

    threads = [
        threading.Thread(target=worker, name=f"bulk-chunk-{n}", daemon=True) for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    error: BaseException | None = None
    try:
        while any(thread.is_alive() for thread in threads) or not finished.empty():
            try:
                ids, ok, outcome = finished.get(timeout=0.05)
            except queue.Empty:
                continue
            if not ok:
                error = error or outcome
                continue
            if error is None:
                yield ids, outcome
    finally:
        with lock:
            state["stop"] = True  # the caller stopped early or a chunk failed: no new chunks
        for thread in threads:
            thread.join()  # never leave a chunk running behind an error
    if error is not None:
        raise error


# --- Many-leg transactions (the membership renewal run) -------------------------------------


@dataclass(frozen=True)
class BulkTransaction:
    """One balanced ledger transaction of any number of legs ``(account id, amount)``."""

    idempotency_key: str
    legs: tuple[tuple[int, int], ...]
    actor_id: int | None = None
    memo: str = ""
    reference: str = ""


@dataclass(frozen=True)
class SpendingWallet:
    account_id: int
    user_id: int
    balance: int
    is_frozen: bool


def wallets_lock_for_spending(*, user_ids: list[int]) -> dict[int, SpendingWallet]:
    """Lock the coin wallets of ``user_ids`` (id order, ``FOR NO KEY UPDATE``, as
    ``accounts_lock``) and return them by user; users without a wallet are left out. The
    caller decides under this lock what each wallet can pay, then posts in the same
    transaction."""
    if not user_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, user_id, balance, is_frozen FROM {Account._meta.db_table} "  # noqa: S608 (the model's table; values are parameters)
            "WHERE kind = 'wallet' AND user_id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
            [sorted(set(user_ids))],
        )
        return {row[1]: SpendingWallet(*row) for row in cursor.fetchall()}


def ledger_post_bulk(
    *, kind: str, transactions: list[BulkTransaction], now: datetime | None = None
) -> dict[str, int]:
    """Post many-leg ``transactions`` set-based (PostgreSQL); returns ``{key: transaction id}``
    of those written (a key already applied is skipped with all its legs).

    Three statements whatever the count: the journal rows, one ``UPDATE … FROM unnest`` of
    the cold balances (a cold account may appear in many transactions: its entries'
    ``balance_after`` run up to the balance the update returns), the entries. Hot accounts only
    get entries, and may not be debited here if they must stay non-negative. Every transaction
    must balance per unit. Must run inside ``transaction.atomic``, after locking the cold
    accounts debited (``wallets_lock_for_spending`` / ``accounts_lock``); a cold balance that
    would break its sign rule raises ``IntegrityError`` and the caller's transaction rolls back.
    """
    if not transactions:
        return {}
    from wallets.models import NON_NEGATIVE_KINDS

    now = now or timezone.now()
    account_ids = sorted({a for t in transactions for a, _x in t.legs})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, unit, kind, is_hot FROM {Account._meta.db_table} "  # noqa: S608 (the model's table; values are parameters)
            "WHERE id = ANY(%s)",
            [account_ids],
        )
        meta = {row[0]: row[1:] for row in cursor.fetchall()}
        for t in transactions:
            per_unit: dict[str, int] = defaultdict(int)
            for account_id, amount in t.legs:
                if account_id not in meta or amount == 0:
                    raise ValueError(f"{t.idempotency_key}: bad leg {account_id} {amount}")
                unit, account_kind, is_hot = meta[account_id]
                if is_hot and amount < 0 and account_kind in NON_NEGATIVE_KINDS:
                    raise ValueError(f"{t.idempotency_key}: bulk debit of hot {account_kind}")
                per_unit[unit] += amount
            if any(per_unit.values()):
                raise ValueError(f"{t.idempotency_key}: unbalanced {dict(per_unit)}")

        cursor.execute(
            "INSERT INTO wallets_ledgertransaction "
            "(kind, idempotency_key, actor_id, memo, reference, reverses_id, created_at) "
            "SELECT %s, k, a, m, r, NULL, %s "
            "FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[]) AS t(k, a, m, r) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key",
            [
                kind,
                now,
                [t.idempotency_key for t in transactions],
                [t.actor_id for t in transactions],
                [t.memo[:500] for t in transactions],
                [t.reference[:100] for t in transactions],
            ],
        )
        written = {key: tx_id for tx_id, key in cursor.fetchall()}
        todo = [t for t in transactions if t.idempotency_key in written]
        if not todo:
            return written

        deltas: dict[int, int] = defaultdict(int)
        for t in todo:
            for account_id, amount in t.legs:
                if not meta[account_id][2]:
                    deltas[account_id] += amount
        balances: dict[int, int] = {}
        if deltas:
            ids = sorted(deltas)
            cursor.execute(
                f"UPDATE {Account._meta.db_table} a SET balance = a.balance + d.delta "  # noqa: S608 (the model's table; values are parameters)
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) "
                "WHERE a.id = d.id AND NOT a.is_hot RETURNING a.id, a.balance",
                [ids, [deltas[i] for i in ids]],
            )
            balances = dict(cursor.fetchall())
        # Each cold account's entries, in posting order, end at the balance just returned.
        running = {i: balances[i] - deltas[i] for i in balances}
        tx_ids: list[int] = []
        entry_accounts: list[int] = []
        amounts: list[int] = []
        after: list[int | None] = []
        for t in todo:
            tx_id = written[t.idempotency_key]
            for account_id, amount in sorted(t.legs):
                tx_ids.append(tx_id)
                entry_accounts.append(account_id)
                amounts.append(amount)
                if account_id in running:
                    running[account_id] += amount
                    after.append(running[account_id])
                else:
                    after.append(None)
        cursor.execute(
            "INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after, "
            "created_at) SELECT t, a, x, b, %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) "
            "WITH ORDINALITY AS e(t, a, x, b, n) ORDER BY n",
            [now, tx_ids, entry_accounts, amounts, after],
        )
    return written


# --- Spends like a gift, in one statement (the membership renewal run) ----------------------

_SPEND_SQL = """
WITH i AS (
    SELECT * FROM unnest(%(keys)s::text[], %(wallets)s::bigint[], %(coins)s::bigint[],
                         %(diamonds)s::bigint[], %(pending)s::bigint[], %(actors)s::bigint[],
                         %(memos)s::text[], %(refs)s::text[])
    WITH ORDINALITY AS i(k, wallet, coins, diamonds, pending, actor, memo, ref, n)
), tx AS (
    INSERT INTO wallets_ledgertransaction
        (kind, idempotency_key, actor_id, memo, reference, reverses_id, created_at)
    SELECT %(kind)s, k, actor, left(memo, 500), left(ref, 100), NULL, %(now)s FROM i ORDER BY n
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
), done AS (
    SELECT i.*, tx.id AS tx_id FROM i JOIN tx ON tx.idempotency_key = i.k
), debit AS (
    UPDATE wallets_account a SET balance = a.balance - d.total
    FROM (SELECT wallet, sum(coins) AS total FROM done GROUP BY wallet) d
    -- The id list lets the planner look the wallets up by key instead of hash-joining every
    -- account (a scan of the whole table per chunk).
    WHERE a.id = d.wallet AND a.id = ANY(%(wallets)s::bigint[]) AND a.kind = 'wallet'
      AND NOT a.is_hot
    RETURNING a.id, a.balance + d.total AS opening
), legs AS (
    SELECT done.n, done.tx_id, done.wallet AS account, -done.coins AS amount,
           debit.opening - sum(done.coins) OVER (PARTITION BY done.wallet ORDER BY done.n)
               AS after
    FROM done JOIN debit ON debit.id = done.wallet
    UNION ALL SELECT n, tx_id, %(spent)s, coins, NULL FROM done
    UNION ALL SELECT n, tx_id, %(issuance)s, -diamonds, NULL FROM done WHERE diamonds <> 0
    UNION ALL SELECT n, tx_id, pending, diamonds, NULL FROM done WHERE diamonds <> 0
), entries AS (
    INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT tx_id, account, amount, after, %(now)s FROM legs ORDER BY n, account
)
SELECT n, tx_id, (SELECT count(*) FROM debit) FROM done
"""


@dataclass
class Spends:
    """Columns of many spends like a gift, one index per spend: ``coins[i]`` from the coin
    wallet account ``wallets[i]`` to coins spent, and ``diamonds[i]`` from diamond issuance to
    the (hot) pending diamonds account ``pending[i]``, under the journal key ``keys[i]``."""

    keys: list[str]
    wallets: list[int]
    coins: list[int]
    diamonds: list[int]
    pending: list[int]
    actors: list[int | None]
    memos: list[str]
    references: list[str]


def ledger_spend_bulk(
    *, kind: str, spends: Spends, spent: int, issuance: int, now: datetime | None = None
) -> list[int | None]:
    """Post ``spends`` (PostgreSQL) in one statement: the journal rows (``ON CONFLICT DO
    NOTHING`` on the key), one ``UPDATE`` of the wallets (a wallet may pay many spends: its
    entries' ``balance_after`` run down to the balance it ends at), the entries. Returns each
    spend's transaction id, ``None`` where the key was already applied (nothing written for it).

    ``spent`` (coins spent) and ``issuance`` (diamond issuance) are the platform accounts; they
    and every ``pending`` account must be hot (entries only, never locked). Must run inside
    ``transaction.atomic`` after ``wallets_lock_for_spending`` of the wallets, whose balances
    the caller checked under that lock; a wallet that would go below zero raises
    ``IntegrityError`` (its CHECK constraint) and the caller's transaction rolls back.
    """
    count = len(spends.keys)
    columns = (spends.wallets, spends.coins, spends.diamonds, spends.pending, spends.actors)
    if any(len(c) != count for c in (*columns, spends.memos, spends.references)):
        raise ValueError("every spend column needs one value per spend")
    if not count:
        return []
    if any(c <= 0 for c in spends.coins) or any(d < 0 for d in spends.diamonds):
        raise ValueError("a spend moves a positive number of coins and no negative diamonds")
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {Account._meta.db_table} "  # noqa: S608 (the model's table; values are parameters)
            "WHERE id = ANY(%s) AND is_hot",
            [sorted({spent, issuance, *spends.pending})],
        )
        hot = {spent, issuance, *spends.pending}
        if cursor.fetchone()[0] != len(hot):
            raise ValueError("coins spent, diamond issuance and every pending account must be hot")
        cursor.execute(
            _SPEND_SQL,
            {
                "kind": kind,
                "now": now,
                "spent": spent,
                "issuance": issuance,
                "keys": spends.keys,
                "wallets": spends.wallets,
                "coins": spends.coins,
                "diamonds": spends.diamonds,
                "pending": spends.pending,
                "actors": spends.actors,
                "memos": spends.memos,
                "refs": spends.references,
            },
        )
        rows = cursor.fetchall()
    written: list[int | None] = [None] * count
    for n, tx_id, _debited in rows:
        written[n - 1] = tx_id
    wallets_paying = {spends.wallets[n - 1] for n, _tx, _d in rows}
    if rows and rows[0][2] != len(wallets_paying):
        # A wallet that is not a cold coin wallet got no debit: the legs would not balance.
        raise ValueError("every spend must be paid from a cold coin wallet")
    return written
