"""The set-based payout batch (PostgreSQL) against the per-payout reference path.

On generated histories (gifts, clawbacks, reversals, staff adjustments, releases, paid and
failed payouts, spread over simulated days so the allocation cursor's margin matters), both
paths must create the same payouts, the same ledger moves and the same FIFO statement lines.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.apps import apps
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from creators.services import earnings_release
from payouts.models import Payout, PayoutEvent, PayoutStatementLine, PayoutStatus
from payouts.services import (
    payout_batch_run,
    payout_mark_failed,
    payout_mark_paid,
)
from payouts.statements import allocation
from payouts.tests.factories import make_payout_creator
from wallets.ledger_checks import run_checks
from wallets.models import AccountKind, Entry, LedgerTransaction, TransactionKind
from wallets.services import Posting, account_balance, account_get, ledger_post, platform_account

pytestmark = pytest.mark.django_db


class Clock:
    """``timezone.now`` and every model default stamped with it, moved by the test."""

    def __init__(self):
        self.now = timezone.now() - timedelta(days=30)

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)

    @contextlib.contextmanager
    def installed(self):
        original = timezone.now
        with contextlib.ExitStack() as stack:
            # A callable, not a return value: the clock moves while it is installed.
            stack.enter_context(mock.patch("django.utils.timezone.now", lambda: self.now))  # noqa: PT008
            for model in apps.get_models():
                for field in model._meta.concrete_fields:
                    if field.default is original:
                        stack.enter_context(
                            mock.patch.object(field, "_get_default", lambda: self.now, create=True)  # noqa: PT008
                        )
            yield self


def _ledger_failures(*, gifts: bool = True) -> dict:
    """verify_ledger's failures (the gift-event checks skipped where gifts are bare postings)."""
    return {
        name: failures
        for name, failures in run_checks()
        if failures and (gifts or not name.startswith(("gift events", "leaderboard")))
    }


class Rollback(Exception):
    pass


def _post(kind: str, postings: list[Posting], memo: str = "") -> None:
    with transaction.atomic():
        ledger_post(
            kind=kind, idempotency_key=f"test:{kind}:{uuid.uuid4()}", postings=postings, memo=memo
        )


def _history(rng: random.Random, creators, clock: Clock) -> None:
    """A few days of earnings and clawbacks for every creator, an event every few hours."""
    issuance = platform_account(AccountKind.DIAMOND_ISSUANCE)
    adjustments = platform_account(AccountKind.DIAMOND_ADJUSTMENTS)
    for _ in range(9):
        clock.advance(hours=rng.randint(1, 5))
        for creator in creators:
            if rng.random() < 0.4:
                continue
            pending = account_get(kind=AccountKind.DIAMONDS_PENDING, user=creator.user)
            available = account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=creator.user)
            roll = rng.random()
            if roll < 0.65:
                amount = rng.choice([50, 100, 300, 700, 1000, 2500])
                _post(TransactionKind.GIFT, [Posting(pending, amount), Posting(issuance, -amount)])
            elif roll < 0.8:
                amount = min(account_balance(pending), rng.choice([50, 200, 900]))
                if amount > 0:
                    _post(
                        TransactionKind.CLAWBACK,
                        [Posting(pending, -amount), Posting(issuance, amount)],
                    )
            elif roll < 0.87:
                amount = rng.choice([100, 400])
                _post(
                    TransactionKind.REVERSAL,
                    [Posting(pending, amount), Posting(issuance, -amount)],
                )
            else:
                amount = rng.choice([-300, -100, 150, 600])
                if amount < 0:
                    amount = -min(-amount, available.balance)
                if amount:
                    _post(
                        TransactionKind.ADJUSTMENT,
                        [Posting(available, amount), Posting(adjustments, -amount)],
                        memo="staff correction",
                    )


def _snapshot(since_id: int) -> dict:
    """The payouts created after ``since_id``, by creator (payout ids differ between runs)."""
    out = {}
    for payout in Payout.objects.filter(pk__gt=since_id).order_by("pk"):
        lines = [
            (line.position, line.kind, line.entry_id, line.transaction_id, line.diamonds,
             line.entry_diamonds, line.occurred_at)
            for line in PayoutStatementLine.objects.filter(payout=payout).order_by("position")
        ]  # fmt: skip
        created = LedgerTransaction.objects.get(idempotency_key=f"payout-created:{payout.pk}")
        entries = sorted(
            (e.account.kind, e.amount, e.balance_after)
            for e in Entry.objects.filter(transaction=created).select_related("account")
        )
        events = list(
            PayoutEvent.objects.filter(payout=payout).values_list(
                "from_status", "to_status", "note"
            )
        )
        out[payout.creator_id] = dict(
            diamonds=payout.diamonds,
            amount=payout.amount,
            status=payout.status,
            rail=payout.rail,
            destination=payout.destination,
            hold_reason=payout.hold_reason,
            diamond_value=payout.diamond_value,
            memo=created.memo.replace(f"#{payout.pk}", "#N"),
            entries=entries,
            events=events,
            lines=lines,
        )
    return out


def _both_paths() -> tuple[dict, dict]:
    last = Payout.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        with transaction.atomic():
            payout_batch_run(set_based=False)
            reference = _snapshot(last)
            raise Rollback
    except Rollback:
        pass
    last = Payout.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    result = payout_batch_run(set_based=True)
    assert result.fallbacks == 0
    return reference, _snapshot(last)


@pytest.mark.slow
def test_set_based_batch_equals_the_per_payout_path_on_generated_histories(
    settings, admin_user, monkeypatch
):
    # The per-payout path reads each creator's entries three at a time (keyset pages on
    # created_at, id: several per payout here; tests/test_keyset.py covers ties).
    monkeypatch.setattr(allocation, "ALLOCATE_PAGE", 3)
    settings.EARNINGS_HOLD_DAYS = 1
    settings.PAYOUT_BATCH_CHUNK = 7  # several chunks
    settings.PAYOUT_APPROVAL_ABOVE = 60  # some payouts wait for approval
    rng = random.Random(16)
    clock = Clock()
    with clock.installed():
        creators = [make_payout_creator() for _ in range(16)]
        for creator in creators[::5]:
            creator.payout_method.tax_form_status = "missing"
            creator.payout_method.save()
        compared = lines = 0
        for _round in range(4):
            _history(rng, creators, clock)
            earnings_release(now=clock.now)
            clock.advance(minutes=5)
            reference, set_based = _both_paths()
            assert set(set_based) == set(reference)
            for creator_id, expected in reference.items():
                for key, value in expected.items():
                    assert set_based[creator_id][key] == value, (creator_id, key)
            compared += len(reference)
            lines += sum(len(p["lines"]) for p in reference.values())
            # Some payouts fail (their lines stop counting, the next payout takes them again),
            # the others are paid; some clawbacks land before the next release.
            for i, payout in enumerate(Payout.objects.filter(status__in=["requested"])):
                if i % 3 == 0:
                    payout_mark_failed(payout=payout, actor=admin_user, reason="bounced")
                else:
                    payout_mark_paid(payout=payout, actor=admin_user, reference=f"bank-{i}")
            clock.advance(hours=2)
        assert compared >= 20
        assert lines >= 150
        assert any(p["hold_reason"] for p in reference.values()) or compared
        failed = Payout.objects.filter(status=PayoutStatus.FAILED).count()
        assert failed >= 3
    assert _ledger_failures(gifts=False) == {}


def test_bulk_chunk_rolls_back_whole_when_a_creator_breaks_it(monkeypatch):
    """A chunk that fails mid-way leaves nothing behind and goes one by one instead."""
    from payouts import bulk

    creators = [make_payout_creator(3000 + i) for i in range(5)]
    calls = {"n": 0}
    original = bulk.statement_allocate_bulk

    def broken(**kwargs):
        calls["n"] += 1
        original(**kwargs)
        from django.db import DatabaseError

        raise DatabaseError("simulated failure after the lines were written")

    monkeypatch.setattr(bulk, "statement_allocate_bulk", broken)
    result = payout_batch_run(set_based=True)

    assert calls["n"] == 1
    assert result.fallbacks == 1
    assert len(result.created) == 5
    for creator in creators:
        payout = Payout.objects.get(creator=creator)
        assert PayoutStatementLine.objects.filter(payout=payout).count() == 1
        assert LedgerTransaction.objects.filter(reference=f"payout:{payout.pk}").count() == 1
    assert _ledger_failures() == {}


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_chunk_then_rerun_pays_everyone_once(transactional_db):
    """The batch (``run_payouts``, a separate process, two chunks at a time) is killed with
    SIGKILL while its second chunk has written everything and waits to commit; its backend goes
    too. The first chunk stays, the second leaves nothing, and a rerun pays each remaining
    creator exactly once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from django.core.management import call_command
    from django.db import connection

    from payouts.tests.test_worker_crash import REPO, _env

    env = _env("http://127.0.0.1:9")  # no Stripe: manual payouts only
    env["PAYOUT_BATCH_CHUNK"] = "3"
    env["PAYOUT_BATCH_WORKERS"] = "2"  # what the assertions below count on, on any machine
    creators = [make_payout_creator(2000 + 100 * i) for i in range(8)]
    # A creator of the second chunk: the chunk's new payout row checks its foreign key to this
    # creator at COMMIT (Django's constraints are deferred), so the chunk is fully written when
    # it waits for this lock and we kill it.
    target = creators[4]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id FROM creators_creator WHERE id = %s FOR UPDATE", [target.pk])
        batch = subprocess.Popen(
            [sys.executable, "manage.py", "run_payouts"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        backend = None
        deadline = time.monotonic() + 90
        while backend is None and time.monotonic() < deadline:
            # pg_stat_activity is read once per transaction unless the snapshot is cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            backend = row[0] if row else None
            if backend is None:
                assert batch.poll() is None, batch.communicate()
                time.sleep(0.05)
        if backend is None:
            cursor.execute(
                "SELECT pid, state, wait_event_type, wait_event, left(query, 200) "
                "FROM pg_stat_activity WHERE datname = current_database()"
            )
            activity = cursor.fetchall()
            batch.kill()
            out, err = batch.communicate()
            raise AssertionError(f"the batch never waited: {activity} {out[-800:]} {err[-1500:]}")
        os.kill(batch.pid, signal.SIGKILL)
        batch.wait(timeout=30)
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    # Whole chunks only: the first (3 creators) committed, nothing of the second; the third ran
    # beside the second (PAYOUT_BATCH_WORKERS=2) and may or may not have committed.
    paid = set(Payout.objects.values_list("creator_id", flat=True))
    chunks = [{c.pk for c in creators[i : i + 3]} for i in (0, 3, 6)]
    assert paid >= chunks[0]
    assert not paid & chunks[1]
    assert paid & chunks[2] in (set(), chunks[2])
    assert PayoutStatementLine.objects.count() == len(paid)
    assert LedgerTransaction.objects.filter(kind=TransactionKind.PAYOUT_CREATED).count() == len(
        paid
    )

    rerun = subprocess.run(
        [sys.executable, "manage.py", "run_payouts"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{8 - len(paid)} payouts created" in rerun.stdout

    for i, creator in enumerate(creators):
        (payout,) = Payout.objects.filter(creator=creator)
        assert payout.diamonds == 2000 + 100 * i
        assert sum(line.diamonds for line in payout.statement_lines.all()) == payout.diamonds
    assert LedgerTransaction.objects.filter(kind=TransactionKind.PAYOUT_CREATED).count() == 8
    call_command("verify_ledger")


@pytest.mark.django_db(transaction=True)
def test_two_chunks_run_at_once_on_their_own_connections(settings, monkeypatch):
    import threading

    from payouts import bulk

    settings.PAYOUT_BATCH_CHUNK = 3
    settings.PAYOUT_BATCH_WORKERS = 2
    creators = [make_payout_creator(2000 + 10 * i) for i in range(10)]
    # The first two chunks each wait for the other inside their transaction: one after the
    # other, the barrier would time out and the batch would fail.
    both = threading.Barrier(2, timeout=20)
    first_two = {creators[0].pk, creators[3].pk}
    threads: set[int] = set()
    original = bulk.chunk_create

    def meets_the_other(**kwargs):
        threads.add(threading.get_ident())
        rows = original(**kwargs)
        if kwargs["creator_ids"][0] in first_two:
            both.wait()
        return rows

    monkeypatch.setattr(bulk, "chunk_create", meets_the_other)
    result = payout_batch_run(set_based=True)

    assert result.fallbacks == 0
    assert threading.get_ident() not in threads
    assert len(threads) == 2
    assert len(result.created) == 10
    for i, creator in enumerate(creators):
        (payout,) = Payout.objects.filter(creator=creator)
        assert payout.diamonds == 2000 + 10 * i
        assert sum(line.diamonds for line in payout.statement_lines.all()) == payout.diamonds
    assert payout_batch_run(set_based=True).created == []
    assert _ledger_failures(gifts=False) == {}


def test_a_statement_line_naming_a_missing_entry_fails_verify_ledger():
    # The lines' references into the ledger carry no foreign-key constraint (the batch writes
    # millions): verify_ledger is what catches a line that names no entry.
    creator = make_payout_creator(3000)
    payout_batch_run(set_based=True)
    line = PayoutStatementLine.objects.get(payout__creator=creator)
    PayoutStatementLine.objects.filter(pk=line.pk).update(entry_id=line.entry_id + 10_000_000)

    failures = _ledger_failures(gifts=False)

    assert list(failures) == ["statement lines allocate each entry at most once"]
    assert (
        "does not match its ledger entry"
        in failures["statement lines allocate each entry at most once"][0]
    )


def test_a_statement_line_naming_a_missing_payout_fails_verify_ledger():
    # Nor does the line's reference to its payout (a query per line of the batch): deleting a
    # payout that has lines is refused by PROTECT, and verify_ledger catches an orphan line.
    creator = make_payout_creator(3000)
    payout_batch_run(set_based=True)
    (payout,) = Payout.objects.filter(creator=creator)
    line = payout.statement_lines.first()
    assert line is not None
    with pytest.raises(ProtectedError) as refused:
        payout.delete()
    assert line in refused.value.protected_objects
    line.pk = None
    line.payout_id = payout.pk + 10_000_000
    line.save()

    failures = _ledger_failures(gifts=False)

    assert list(failures) == ["statement lines allocate each entry at most once"]
    assert failures["statement lines allocate each entry at most once"] == [
        f"statement line {line.pk} names no payout"
    ]
