"""``ledger_move_bulk`` and the array literals the bulk jobs pass to PostgreSQL."""

from decimal import Decimal

import pytest
from django.db import connection, transaction

from accounts.tests.factories import UserFactory
from wallets.ledger_checks import CORE_CHECKS
from wallets.models import AccountKind, Entry, LedgerTransaction, TransactionKind
from wallets.services import Posting, account_get, ledger_post, platform_account
from wallets.services.bulk import (
    Move,
    accounts_lock,
    int_array,
    ledger_move_bulk,
    text_rows_json,
)

pytestmark = pytest.mark.django_db


def test_int_array_is_a_literal_postgresql_reads_back_exactly():
    values = [1, -7, 0, None, 9_223_372_036_854_775_807, Decimal("42")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::bigint[]", [int_array(values)])
        assert cursor.fetchone()[0] == [1, -7, 0, None, 9_223_372_036_854_775_807, 42]
        cursor.execute("SELECT %s::bigint[]", [int_array([])])
        assert cursor.fetchone()[0] == []


@pytest.mark.parametrize("bad", ["1,2", "1}", 1.5, Decimal("1.5"), "NULL"])
def test_int_array_refuses_anything_but_integers(bad):
    with pytest.raises((TypeError, ValueError)):
        int_array([1, bad])


def test_text_rows_come_back_unchanged_and_in_order():
    rows = [
        ("plain", 'a "quoted" memo, {braced}', "back\\slash"),
        ("NULL", "", "ünïcødé ✓ 'single' quotes"),
        ("tab\tnew\nline", "$1 %s %(x)s", "x"),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r->>0, r->>1, r->>2 FROM json_array_elements(%s::json) AS t(r)",
            [text_rows_json(rows)],
        )
        assert cursor.fetchall() == rows


def test_moves_post_journal_rows_entries_and_balances_once():
    users = [UserFactory() for _ in range(3)]
    available = [account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=u) for u in users]
    in_payout = [account_get(kind=AccountKind.DIAMONDS_IN_PAYOUT, user=u) for u in users]
    adjustments = platform_account(AccountKind.DIAMOND_ADJUSTMENTS)
    for account, diamonds in zip(available, (500, 700, 900), strict=True):
        with transaction.atomic():
            ledger_post(
                kind=TransactionKind.ADJUSTMENT,
                idempotency_key=f"test-fund:{account.pk}",
                postings=[Posting(account, diamonds), Posting(adjustments, -diamonds)],
            )
    moves = [
        Move(
            idempotency_key=f"test-move:{u.pk}",
            debit=a.pk,
            credit=p.pk,
            amount=100 * (i + 1),
            memo=f'Payout #{i} ("€1.{i}0", back\\slash)',
            reference=f"test:{u.pk}",
        )
        for i, (u, a, p) in enumerate(zip(users, available, in_payout, strict=True))
    ]
    for _attempt in range(2):  # the second time every key is already applied: nothing moves
        with transaction.atomic():
            accounts_lock(account_ids=[a.pk for a in available])
            written = ledger_move_bulk(kind=TransactionKind.PAYOUT_CREATED, moves=moves)
        assert len(written) == (3 if _attempt == 0 else 0)

    for move, account in zip(moves, available, strict=True):
        journal = LedgerTransaction.objects.get(idempotency_key=move.idempotency_key)
        assert (journal.memo, journal.reference) == (move.memo, move.reference)
        entries = sorted(
            Entry.objects.filter(transaction=journal).values_list("account_id", "amount")
        )
        assert entries == sorted([(move.debit, -move.amount), (move.credit, move.amount)])
        account.refresh_from_db()
    assert [a.balance for a in available] == [400, 500, 600]
    assert [p.balance for p in (type(p).objects.get(pk=p.pk) for p in in_payout)] == [
        100,
        200,
        300,
    ]
    assert [p for _name, check in CORE_CHECKS for p in check()] == []


@pytest.mark.django_db(transaction=True)
def test_parallel_chunks_keep_one_connection_per_worker_and_close_it_at_the_end():
    import threading
    import time

    from django.db import connection as caller

    from wallets.services.bulk import chunks_in_parallel

    chunks = [[n, n + 1] for n in range(1, 20, 2)]  # 10 chunks of 2 ids

    def next_chunk(after: int) -> list[int]:
        return next((c for c in chunks if c[0] > after), [])

    def work(ids: list[int]) -> tuple[int, int]:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return threading.get_ident(), cursor.fetchone()[0]

    done = list(chunks_in_parallel(next_chunk=next_chunk, work=work, workers=2))

    assert sorted(ids for ids, _result in done) == chunks
    backend_of_thread: dict[int, set[int]] = {}
    for _ids, (thread, backend) in done:
        backend_of_thread.setdefault(thread, set()).add(backend)
    assert threading.get_ident() not in backend_of_thread
    assert 1 <= len(backend_of_thread) <= 2
    # One backend per worker thread for all its chunks (no new connection per chunk) ...
    assert all(len(backends) == 1 for backends in backend_of_thread.values())
    backends = [b for bs in backend_of_thread.values() for b in bs]
    # ... and closed once the run is over (a backend leaves pg_stat_activity as it exits, just
    # after its client hangs up: polled, not slept on).
    deadline = time.monotonic() + 10
    with caller.cursor() as cursor:
        while True:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [backends])
            left = cursor.fetchone()[0]
            if left == 0 or time.monotonic() > deadline:
                break
    assert left == 0


@pytest.mark.django_db(transaction=True)
def test_a_failing_parallel_chunk_stops_new_chunks_and_is_raised():
    from wallets.services.bulk import chunks_in_parallel

    started: list[int] = []

    def next_chunk(after: int) -> list[int]:
        return [after + 1] if after < 50 else []

    def work(ids: list[int]) -> int:
        started.append(ids[0])
        if ids[0] == 3:
            raise RuntimeError("chunk 3 broke")
        return ids[0]

    with pytest.raises(RuntimeError, match="chunk 3 broke"):
        list(chunks_in_parallel(next_chunk=next_chunk, work=work, workers=2))
    assert 3 in started
    assert len(started) < 10  # no new chunks after the failure (at most the running ones)
