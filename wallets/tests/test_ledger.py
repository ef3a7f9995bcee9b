import random
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Sum

from accounts.tests.factories import UserFactory
from config.errors import InsufficientFunds
from wallets.ledger_checks import run_checks
from wallets.models import Account, AccountKind, Entry, LedgerTransaction, TransactionKind
from wallets.services import (
    LedgerImbalance,
    Posting,
    account_balance,
    account_rollup,
    ledger_post,
    platform_account,
    wallet_adjust,
    wallet_get,
)


def _failures():
    return [(name, problems) for name, problems in run_checks() if problems]


def _fund(user, coins):
    return wallet_adjust(user=user, coins=coins, reason="test funding", actor=None)


def _transfer(source, target, coins, key):
    with transaction.atomic():
        return ledger_post(
            kind=TransactionKind.ADJUSTMENT,
            idempotency_key=key,
            postings=[Posting(source, -coins), Posting(target, coins)],
            memo="test transfer",
        )


@pytest.mark.django_db
def test_grant_credits_wallet_and_balances_with_adjustments():
    user = UserFactory()
    txn = _fund(user, 250)
    wallet = wallet_get(user=user)
    assert wallet.balance == 250
    entries = {e.account.kind: e for e in txn.entries.select_related("account")}
    assert entries[AccountKind.WALLET].amount == 250
    assert entries[AccountKind.WALLET].balance_after == 250
    assert entries[AccountKind.ADJUSTMENTS].amount == -250
    assert txn.memo == "test funding"
    assert _failures() == []


@pytest.mark.django_db
def test_debit_never_goes_below_zero_and_writes_nothing():
    user = UserFactory()
    _fund(user, 10)
    before = LedgerTransaction.objects.count()
    with pytest.raises(InsufficientFunds):
        wallet_adjust(user=user, coins=-11, reason="too much", actor=None)
    assert wallet_get(user=user).balance == 10
    assert LedgerTransaction.objects.count() == before


@pytest.mark.django_db
def test_unbalanced_transaction_is_refused():
    user = UserFactory()
    with pytest.raises(LedgerImbalance), transaction.atomic():
        ledger_post(
            kind=TransactionKind.ADJUSTMENT,
            idempotency_key="unbalanced",
            postings=[Posting(wallet_get(user=user), 5)],
        )
    assert not LedgerTransaction.objects.filter(idempotency_key="unbalanced").exists()


@pytest.mark.django_db
def test_repeated_key_applies_once():
    user = UserFactory()
    first = wallet_adjust(user=user, coins=5, reason="r", actor=None, idempotency_key="k1")
    again = wallet_adjust(user=user, coins=5, reason="r", actor=None, idempotency_key="k1")
    assert first.pk == again.pk
    assert wallet_get(user=user).balance == 5


@pytest.mark.django_db
def test_database_check_constraint_backs_non_negative_wallet():
    user = UserFactory()
    wallet = wallet_get(user=user)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE wallets_account SET balance = -1 WHERE id = %s", [wallet.pk])


@pytest.mark.django_db
def test_entries_and_transactions_cannot_change_even_by_raw_sql():
    user = UserFactory()
    txn = _fund(user, 7)
    entry = txn.entries.first()
    entry.amount = 8
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        Entry.objects.filter(pk=entry.pk).update(amount=9)
    with pytest.raises(PermissionError):
        LedgerTransaction.objects.filter(pk=txn.pk).delete()
    for sql in (
        "UPDATE wallets_entry SET amount = 8 WHERE id = %s",
        "DELETE FROM wallets_entry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE wallets_ledgertransaction SET memo = 'x' WHERE id = %s", [txn.pk])
    assert Entry.objects.get(pk=entry.pk).amount == 7


@pytest.mark.django_db
def test_hot_account_rollup_keeps_live_balance(settings):
    settings.LEDGER_ROLLUP_LAG_SECONDS = 0
    users = UserFactory.create_batch(3)
    for u in users:
        _fund(u, 40)
    adjustments = platform_account(AccountKind.ADJUSTMENTS)
    assert adjustments.is_hot
    assert adjustments.balance == 0
    assert account_balance(adjustments) == -120
    rolled = account_rollup(account_id=adjustments.pk)
    assert rolled.balance == -120
    assert rolled.checkpoint_at is not None
    _fund(users[0], 5)
    assert account_balance(Account.objects.get(pk=adjustments.pk)) == -125
    assert _failures() == []


@pytest.mark.django_db
def test_verify_ledger_names_a_corrupted_balance():
    user = UserFactory()
    _fund(user, 30)
    wallet = wallet_get(user=user)
    with connection.cursor() as cursor:  # bypasses the ledger on purpose
        cursor.execute("UPDATE wallets_account SET balance = 31 WHERE id = %s", [wallet.pk])
    failures = dict(_failures())
    assert any(f"account {wallet.pk}" in p for p in failures["balances equal their entries"])
    with pytest.raises(CommandError, match="checks failed"):
        call_command("verify_ledger")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_random_concurrent_transfers_conserve_coins():
    users = UserFactory.create_batch(50)
    wallets = []
    for u in users:
        _fund(u, random.randint(1, 200))
        wallets.append(wallet_get(user=u))
    total_before = sum(w.balance for w in Account.objects.filter(kind=AccountKind.WALLET))
    successes: list[str] = []
    refusals: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(thread_no: int) -> None:
        rng = random.Random(thread_no)
        try:
            for i in range(250):
                source, target = rng.sample(wallets, 2)
                key = f"t{thread_no}-{i}"
                try:
                    _transfer(source, target, rng.randint(1, 60), key)
                except InsufficientFunds:
                    with lock:
                        refusals.append(key)
                else:
                    with lock:
                        successes.append(key)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(successes) + len(refusals) == 5000
    assert successes
    assert refusals
    balances = Account.objects.filter(kind=AccountKind.WALLET)
    assert balances.aggregate(s=Sum("balance"))["s"] == total_before
    assert not balances.filter(balance__lt=0).exists()
    applied = set(
        LedgerTransaction.objects.filter(idempotency_key__startswith="t").values_list(
            "idempotency_key", flat=True
        )
    )
    assert applied == set(successes)
    assert _failures() == []


@pytest.mark.django_db(transaction=True)
def test_same_key_from_ten_threads_is_one_transaction():
    source, target = UserFactory(), UserFactory()
    _fund(source, 100)
    source_wallet, target_wallet = wallet_get(user=source), wallet_get(user=target)
    barrier = threading.Barrier(10)
    created: list[bool] = []

    def worker() -> None:
        try:
            barrier.wait()
            created.append(_transfer(source_wallet, target_wallet, 30, "same-key").created)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False] * 9 + [True]
    assert LedgerTransaction.objects.filter(idempotency_key="same-key").count() == 1
    assert wallet_get(user=source).balance == 70
    assert wallet_get(user=target).balance == 30
    assert _failures() == []
