"""``ledger_spend_bulk``: many gift-like spends in one statement (the membership renewals)."""

import pytest
from django.db import IntegrityError, transaction

from accounts.tests.factories import UserFactory
from wallets.ledger_checks import CORE_CHECKS
from wallets.models import AccountKind, Entry, LedgerTransaction, TransactionKind
from wallets.services import account_get, platform_account, wallet_adjust, wallet_get
from wallets.services.bulk import Spends, ledger_spend_bulk, wallets_lock_for_spending

pytestmark = pytest.mark.django_db


def core_problems() -> list[str]:
    """The ledger's own checks (the membership checks want charge rows these spends lack)."""
    return [p for _name, check in CORE_CHECKS for p in check()]


def spends(keys, wallets, coins, pending):
    return Spends(
        keys=keys,
        wallets=wallets,
        coins=coins,
        diamonds=[c // 2 for c in coins],
        pending=pending,
        actors=[None] * len(keys),
        memos=["spend"] * len(keys),
        references=[""] * len(keys),
    )


def post(batch):
    with transaction.atomic():
        wallets_lock_for_spending(user_ids=[])
        return ledger_spend_bulk(
            kind=TransactionKind.MEMBERSHIP,
            spends=batch,
            spent=platform_account(AccountKind.COINS_SPENT).pk,
            issuance=platform_account(AccountKind.DIAMOND_ISSUANCE).pk,
        )


def test_spends_are_written_once_and_one_wallet_pays_several_in_order():
    payer, other, creator = UserFactory(), UserFactory(), UserFactory()
    for user in (payer, other):
        wallet_adjust(user=user, coins=500, reason="test", actor=None)
    wallet, wallet_b = wallet_get(user=payer).pk, wallet_get(user=other).pk
    pending = account_get(kind=AccountKind.DIAMONDS_PENDING, user=creator).pk
    batch = spends(["a", "b", "c"], [wallet, wallet_b, wallet], [100, 70, 30], [pending] * 3)

    first = post(batch)
    assert all(first)
    assert len(set(first)) == 3
    assert wallet_get(user=payer).balance == 370
    assert wallet_get(user=other).balance == 430
    # The payer's entries run down to its balance, in the order of the spends.
    afters = list(
        Entry.objects.filter(account_id=wallet, amount__lt=0).order_by("id")
        .values_list("balance_after", flat=True)
    )  # fmt: skip
    assert afters == [400, 370]
    assert Entry.objects.filter(transaction_id__in=first).count() == 12
    assert core_problems() == []

    again = post(spends(["a", "d"], [wallet, wallet], [100, 20], [pending] * 2))
    assert again[0] is None  # "a" was applied: never twice
    assert again[1] is not None
    assert wallet_get(user=payer).balance == 350
    assert LedgerTransaction.objects.filter(kind=TransactionKind.MEMBERSHIP).count() == 4
    assert core_problems() == []


def test_an_overdrawn_wallet_or_a_cold_credit_account_writes_nothing():
    payer, creator = UserFactory(), UserFactory()
    wallet_adjust(user=payer, coins=100, reason="test", actor=None)
    wallet = wallet_get(user=payer).pk
    pending = account_get(kind=AccountKind.DIAMONDS_PENDING, user=creator).pk
    with pytest.raises(IntegrityError):  # the wallet's non-negative CHECK
        post(spends(["x", "y"], [wallet, wallet], [60, 60], [pending] * 2))
    with pytest.raises(ValueError, match="hot"):  # a cold account as the pending one
        post(spends(["z"], [wallet], [10], [wallet]))
    with pytest.raises(ValueError, match="cold coin wallet"):  # paid from a hot account
        post(spends(["w"], [pending], [10], [pending]))
    assert not LedgerTransaction.objects.filter(kind=TransactionKind.MEMBERSHIP).exists()
    assert wallet_get(user=payer).balance == 100
