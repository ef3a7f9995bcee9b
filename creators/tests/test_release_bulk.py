"""The set-based earnings release (PostgreSQL): chunks, equality with the per-creator path,
resumption after a failure, and gifts never waiting for a release's locks."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

import creators.services as services
from accounts.tests.factories import UserFactory
from creators.models import Creator
from creators.services import earnings_release
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from wallets.ledger_checks import run_checks
from wallets.models import AccountKind, LedgerTransaction, TransactionKind
from wallets.services import Posting, account_balance, account_get, ledger_post, platform_account


def _world(n: int = 9):
    GiftFactory(slug="rose", coins=1)
    creators = [make_creator(f"rel{i}-{uuid.uuid4().hex[:5]}") for i in range(n)]
    sender = fund(UserFactory(), 100_000)
    for i, creator in enumerate(creators):
        for q in range(1, 2 + i % 3):
            gift_send(
                sender=sender,
                creator_handle=creator.handle,
                gift_slug="rose",
                quantity=10 * q + i,
                client_key=str(uuid.uuid4()),
            )
        if i % 4 == 1:  # a clawback takes part of what matured back out of pending
            with transaction.atomic():
                pending = account_get(kind=AccountKind.DIAMONDS_PENDING, user=creator.user)
                ledger_post(
                    kind=TransactionKind.CLAWBACK,
                    idempotency_key=f"test-clawback:{creator.pk}",
                    postings=[
                        Posting(pending, -7),
                        Posting(platform_account(AccountKind.DIAMOND_ISSUANCE), 7),
                    ],
                )
    return creators, sender


def _balances(creators) -> list[tuple[int, int]]:
    return [
        (
            account_balance(account_get(kind=AccountKind.DIAMONDS_PENDING, user=c.user)),
            account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=c.user).balance,
        )
        for c in creators
    ]


def _failures() -> dict:
    return {name: f for name, f in run_checks() if f}


@pytest.mark.django_db
def test_set_based_release_equals_the_per_creator_path(settings, monkeypatch):
    settings.EARNINGS_RELEASE_CHUNK = 4
    creators, _sender = _world()
    later = timezone.now() + timedelta(days=settings.EARNINGS_HOLD_DAYS, seconds=1)

    class Rollback(Exception):
        pass

    try:
        with transaction.atomic():
            monkeypatch.setattr(services, "bulk_supported", lambda: False)
            one_by_one = earnings_release(now=later)
            expected = _balances(creators)
            raise Rollback
    except Rollback:
        pass
    monkeypatch.setattr(services, "bulk_supported", lambda: True)

    results = earnings_release(now=later)

    assert [(r.creator_id, r.diamonds) for r in results] == [
        (r.creator_id, r.diamonds) for r in one_by_one
    ]
    assert _balances(creators) == expected
    assert all(pending == 0 for pending, _ in expected)
    assert LedgerTransaction.objects.filter(kind=TransactionKind.RELEASE).count() == len(creators)
    assert set(Creator.objects.values_list("released_until", flat=True)) == {
        later - timedelta(days=settings.EARNINGS_HOLD_DAYS)
    }
    # Idempotent: nothing more to release at the same moment.
    assert sum(r.diamonds for r in earnings_release(now=later)) == 0
    assert _failures() == {}


@pytest.mark.django_db
def test_a_failed_chunk_keeps_the_chunks_before_it_and_a_rerun_finishes(settings, monkeypatch):
    settings.EARNINGS_RELEASE_CHUNK = 3
    creators, _sender = _world()
    later = timezone.now() + timedelta(days=settings.EARNINGS_HOLD_DAYS, seconds=1)
    original = services._release_chunk
    calls = {"n": 0}

    def dies_in_the_second_chunk(**kwargs):
        calls["n"] += 1
        results = original(**kwargs)
        if calls["n"] == 2:
            raise RuntimeError("killed mid-chunk, after its writes")
        return results

    monkeypatch.setattr(services, "_release_chunk", dies_in_the_second_chunk)
    with pytest.raises(RuntimeError):
        earnings_release(now=later)
    monkeypatch.setattr(services, "_release_chunk", original)
    released = LedgerTransaction.objects.filter(kind=TransactionKind.RELEASE).count()
    assert released == 3  # the first chunk committed, the second rolled back whole

    earnings_release(now=later)

    assert LedgerTransaction.objects.filter(kind=TransactionKind.RELEASE).count() == len(creators)
    assert all(pending == 0 for pending, _ in _balances(creators))
    assert _failures() == {}


@pytest.mark.django_db(transaction=True)
def test_a_gift_does_not_wait_for_a_release_holding_its_creators_locks(settings):
    creators, sender = _world(2)
    later = timezone.now() + timedelta(days=settings.EARNINGS_HOLD_DAYS, seconds=1)
    cutoff = later - timedelta(days=settings.EARNINGS_HOLD_DAYS)
    holding, done = threading.Event(), threading.Event()
    errors = []

    def release_and_hold():
        try:
            with transaction.atomic():
                services._release_chunk(creator_ids=[c.pk for c in creators], cutoff=cutoff)
                holding.set()
                done.wait(30)  # the chunk's locks are held until this commits
        except Exception as exc:
            errors.append(exc)
            holding.set()
        finally:
            connection.close()

    thread = threading.Thread(target=release_and_hold)
    thread.start()
    try:
        assert holding.wait(30)
        with transaction.atomic(), connection.cursor() as cursor:
            # Waiting for the release's locks would fail this gift at once.
            cursor.execute("SET LOCAL lock_timeout = '2s'")
            gift_send(
                sender=sender,
                creator_handle=creators[0].handle,
                gift_slug="rose",
                quantity=3,
                client_key=str(uuid.uuid4()),
            )
    finally:
        done.set()
        thread.join(30)
    assert not errors
    assert _failures() == {}


@pytest.mark.django_db(transaction=True)
def test_two_chunks_release_at_once_on_their_own_connections(settings, monkeypatch):
    settings.EARNINGS_RELEASE_CHUNK = 3
    settings.EARNINGS_RELEASE_WORKERS = 2
    creators, _sender = _world()
    later = timezone.now() + timedelta(days=settings.EARNINGS_HOLD_DAYS, seconds=1)
    # The first two chunks each wait for the other inside their transaction: one after the
    # other, the barrier would time out and the release would fail.
    both = threading.Barrier(2, timeout=20)
    threads: set[int] = set()
    original = services._release_chunk

    first_two = {creators[0].pk, creators[3].pk}

    def meets_the_other(**kwargs):
        threads.add(threading.get_ident())
        result = original(**kwargs)
        if kwargs["creator_ids"][0] in first_two:
            both.wait()
        return result

    monkeypatch.setattr(services, "_release_chunk", meets_the_other)
    results = earnings_release(now=later)

    assert threading.get_ident() not in threads
    assert len(threads) == 2
    assert sorted(r.creator_id for r in results) == sorted(c.pk for c in creators)
    assert LedgerTransaction.objects.filter(kind=TransactionKind.RELEASE).count() == len(creators)
    assert all(pending == 0 for pending, _ in _balances(creators))
    assert sum(r.diamonds for r in earnings_release(now=later)) == 0
    assert _failures() == {}
