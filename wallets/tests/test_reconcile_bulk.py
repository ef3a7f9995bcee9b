"""Reconciliation credits a page of lost payments set-based, in one transaction: the same
books as the per-item path, exactly once beside the webhook, whole pages only after a kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, connections, transaction

from accounts.tests.factories import UserFactory
from notifications.models import OutboxEmail
from tests.helpers import subprocess_env
from wallets import stripe_gateway as gateway
from wallets.ledger_checks import run_checks
from wallets.models import (
    Account,
    AccountKind,
    Discrepancy,
    LedgerTransaction,
    Recharge,
    RechargeStatus,
)
from wallets.services import payments_reconcile, reconciliation
from wallets.services.ledger import Posting, account_get, ledger_post, platform_account
from wallets.services.recharges import custom_price, recharge_apply_success

REPO = Path(__file__).resolve().parents[2]


def _intent(pi_id: str, *, status: str, amount: int, currency: str, user_id: int) -> dict:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "currency": currency.lower(),
        "created": int(time.time()),
        "metadata": {"app": "applause", "user_id": str(user_id)},
    }


def _objects(dicts: list[dict]) -> list:
    return [gateway.PaymentIntent.from_stripe(d) for d in dicts]


def _listing(monkeypatch, intents: list) -> None:
    monkeypatch.setattr(gateway, "payment_intents_since", lambda since: iter(intents))
    monkeypatch.setattr(gateway, "refunds_since", lambda since: iter(()))


def _recharge(user, pi_id: str, *, currency: str = "USD", coins: int = 700, status="pending"):
    from wallets.models.payments import recharge_row_new

    return recharge_row_new(
        user=user,
        coins=coins,
        price=custom_price(coins=coins, currency=currency),
        payment_intent=pi_id,
        status=status,
    )


# Each case: a recharge (or none) and its PaymentIntent at Stripe, for one user of its own.
CASES = [
    "plain",
    "creating",
    "failed_then_paid",
    "two_for_one_user",
    "amount_mismatch",
    "currency_mismatch",
    "other_user",
    "frozen_wallet",
    "owes_coins",
    "no_wallet_yet",
    "canceled",
    "already_credited",
    "ours_without_recharge",
    "not_ours",
]


def _world(prefix: str) -> tuple[list, dict[str, tuple]]:
    """Every case in every currency; returns the listing and ``{case key: (user, recharges)}``."""
    listing: list[dict] = []
    made: dict[str, tuple] = {}
    for currency in ("USD", "EUR", "GBP"):
        for case in CASES:
            key = f"{case}:{currency}"
            user = UserFactory.create()
            if case != "no_wallet_yet":
                account_get(kind=AccountKind.WALLET, user=user)
            pi = f"pi_{prefix}_{case}_{currency}"
            price = custom_price(coins=700, currency=currency)
            amount = gateway.to_minor(price)
            recharges: list[Recharge] = []
            if case in ("ours_without_recharge", "not_ours"):
                intent = _intent(
                    pi, status="succeeded", amount=amount, currency=currency, user_id=user.pk
                )
                if case == "not_ours":
                    intent["metadata"] = {}
                listing.append(intent)
                made[key] = (user, recharges)
                continue
            status = {"creating": "creating", "failed_then_paid": "failed"}.get(case, "pending")
            recharges.append(_recharge(user, pi, currency=currency, status=status))
            intent = _intent(
                pi, status="succeeded", amount=amount, currency=currency, user_id=user.pk
            )
            if case == "amount_mismatch":
                intent["amount"] += 1
            elif case == "currency_mismatch":
                intent["currency"] = "usd" if currency != "USD" else "eur"
            elif case == "other_user":
                intent["metadata"]["user_id"] = str(user.pk + 100000)
            elif case == "canceled":
                intent["status"] = "canceled"
            elif case == "frozen_wallet":
                Account.objects.filter(kind=AccountKind.WALLET, user=user).update(
                    is_frozen=True, frozen_reason="looked at by staff"
                )
            elif case == "owes_coins":
                with transaction.atomic():
                    ledger_post(
                        kind="adjustment",
                        idempotency_key=f"debt:{prefix}:{key}",
                        postings=[
                            Posting(account_get(kind=AccountKind.COIN_DEBT, user=user), -250),
                            Posting(platform_account(AccountKind.ADJUSTMENTS), 250),
                        ],
                    )
            elif case == "already_credited":
                recharge_apply_success(payment_intent_id=pi, intent=_objects([intent])[0])
            listing.append(intent)
            if case == "two_for_one_user":
                second = f"{pi}_b"
                recharges.append(_recharge(user, second, currency=currency, coins=1300))
                price2 = custom_price(coins=1300, currency=currency)
                listing.append(
                    _intent(
                        second,
                        status="succeeded",
                        amount=gateway.to_minor(price2),
                        currency=currency,
                        user_id=user.pk,
                    )
                )
            made[key] = (user, recharges)
    return listing, made


def _books(made: dict[str, tuple]) -> dict[str, object]:
    """What each case ended as, with ids taken out (comparable across the two worlds)."""
    out: dict[str, object] = {}
    for key, (user, recharges) in made.items():
        accounts = {
            a.kind: (a.balance, a.is_frozen)
            for a in Account.objects.filter(user=user)
            if a.kind != AccountKind.COIN_DEBT or a.balance  # an empty debt row is no money
        }
        journal = []
        mails = []
        for recharge in recharges:
            recharge.refresh_from_db()
            tx = LedgerTransaction.objects.filter(idempotency_key=recharge.ledger_key).first()
            if tx is not None:
                legs = sorted((e.account.kind, e.amount, e.balance_after) for e in tx.entries.all())
                journal.append((tx.kind, re.sub(r"#\d+", "#", tx.memo), legs))
            mails += [
                (m.template, m.status, m.subject)
                for m in OutboxEmail.objects.filter(event=f"recharge_receipt:{recharge.pk}")
            ]
        kinds = sorted(
            Discrepancy.objects.filter(
                object_id__in=[r.payment_intent for r in recharges] + [str(r.pk) for r in recharges]
            ).values_list("kind", flat=True)
        )
        out[key] = (
            [(r.status, r.succeeded_at is not None) for r in recharges],
            accounts,
            journal,
            mails,
            kinds,
        )
    return out


@pytest.mark.django_db
def test_set_based_credit_books_exactly_what_the_per_item_path_books(monkeypatch):
    monkeypatch.setattr(reconciliation, "RECONCILE_PAGE", 7)
    bulk_listing, bulk_world = _world("bulk")
    item_listing, item_world = _world("item")
    calls = {"n": 0, "credited": 0}
    original = reconciliation.recharges_credit_page

    def counted(**kwargs):
        calls["n"] += 1
        credited, rest = original(**kwargs)
        calls["credited"] += credited
        return credited, rest

    monkeypatch.setattr(reconciliation, "recharges_credit_page", counted)
    _listing(monkeypatch, _objects(bulk_listing))
    bulk_run = payments_reconcile()
    # Pages went through the set-based credit: 3 currencies x (plain, creating, failed, two of
    # one user); a frozen wallet, a debt or a wallet not made yet went one by one.
    assert calls["n"] > 1
    assert calls["credited"] == 15

    # The page's receipts are written after its commit by a task (none runs here): the next
    # run writes those missing.
    again = payments_reconcile()
    assert again.counts.get("credited", 0) == 0
    assert again.counts["receipts_written"] == 15

    monkeypatch.setattr(reconciliation, "bulk_supported", lambda: False)
    _listing(monkeypatch, _objects(item_listing))
    item_run = payments_reconcile()

    assert bulk_run.status == item_run.status == "done", (bulk_run.error, item_run.error)
    assert bulk_run.counts == item_run.counts
    # 3 currencies x (plain, creating, failed, 2 of one user, frozen, owes, no wallet) = 24.
    assert bulk_run.counts["credited"] == 24
    assert bulk_run.counts["marked_failed"] == 3
    bulk_books, item_books = _books(bulk_world), _books(item_world)
    assert bulk_books == item_books
    # The comparison holds something: a plain credit, a settled debt, a mismatch.
    status, accounts, journal, mails, _kinds = bulk_books["plain:EUR"]
    assert status == [("succeeded", True)]
    assert accounts == {"wallet": (700, False)}
    assert journal[0][2] == [("coin_issuance", -700, None), ("wallet", 700, 700)]
    assert len(mails) == 1
    assert bulk_books["owes_coins:GBP"][1]["wallet"] == (450, False)
    assert bulk_books["two_for_one_user:USD"][1]["wallet"] == (2000, False)
    assert bulk_books["amount_mismatch:USD"][4] == ["amount_mismatch"]
    assert {name: f for name, f in run_checks() if f} == {}


@pytest.mark.slow
def test_a_webhook_crediting_the_same_payments_at_the_same_moment_credits_each_once(
    transactional_db, monkeypatch
):
    """Reconciliation (pages of 10, set-based) and the webhook's service (one by one, from the
    other end) on 60 payments of 6 users at once, on PostgreSQL: each payment one credit."""
    monkeypatch.setattr(reconciliation, "RECONCILE_PAGE", 10)
    users = [UserFactory.create() for _ in range(6)]
    for user in users:
        account_get(kind=AccountKind.WALLET, user=user)
    currencies = ("USD", "EUR", "GBP")
    dicts = []
    for i in range(60):
        user, currency = users[i % 6], currencies[i % 3]
        recharge = _recharge(user, f"pi_race_{i}", currency=currency, coins=100 + i)
        dicts.append(
            _intent(
                recharge.payment_intent,
                status="succeeded",
                amount=gateway.to_minor(recharge.price),
                currency=currency,
                user_id=user.pk,
            )
        )
    intents = _objects(dicts)
    _listing(monkeypatch, intents)
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def reconcile() -> None:
        try:
            start.wait()
            results["run"] = payments_reconcile()
        except Exception as exc:  # reported below
            results["reconcile_error"] = exc
        finally:
            connections.close_all()

    def webhooks() -> None:
        try:
            start.wait()
            for intent in reversed(intents):
                recharge_apply_success(payment_intent_id=intent.id, intent=intent)
        except Exception as exc:
            results["webhook_error"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reconcile), threading.Thread(target=webhooks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert "reconcile_error" not in results, results
    assert "webhook_error" not in results, results
    run = results["run"]
    assert run.status == "done", run.error  # type: ignore[attr-defined]

    recharges = list(Recharge.objects.filter(payment_intent__startswith="pi_race_"))
    assert {r.status for r in recharges} == {RechargeStatus.SUCCEEDED}
    keys = list(
        LedgerTransaction.objects.filter(
            idempotency_key__startswith="recharge:pi_race_"
        ).values_list("idempotency_key", flat=True)
    )
    assert sorted(keys) == sorted(r.ledger_key for r in recharges)
    for user in users:
        wallet = Account.objects.get(kind=AccountKind.WALLET, user=user)
        assert wallet.balance == sum(r.coins for r in recharges if r.user_id == user.pk)
    # Receipts: the webhook's in its transaction, the pages' by their task or the next run.
    payments_reconcile()
    assert OutboxEmail.objects.filter(event__startswith="recharge_receipt:").count() == 60
    assert {name: f for name, f in run_checks() if f} == {}


KILLED_RUN = """
import json, sys
import django
django.setup()
from wallets import stripe_gateway as gateway
from wallets.services import payments_reconcile, reconciliation
listing = [gateway.PaymentIntent.from_stripe(d) for d in json.load(open(sys.argv[1]))]
gateway.payment_intents_since = lambda since: iter(listing)
gateway.refunds_since = lambda since: iter(())
reconciliation.RECONCILE_PAGE = 5
payments_reconcile()
"""


@pytest.mark.slow
def test_a_run_killed_in_the_middle_of_a_page_leaves_it_whole_and_the_rerun_credits_once(
    transactional_db, monkeypatch, tmp_path
):
    """The run (its own process, pages of 5) is SIGKILLed in the middle of its second page
    (its recharges flipped, its journal rows waiting): the first page stays, the second
    leaves nothing, and a rerun credits every payment exactly once."""
    users = [UserFactory.create() for _ in range(3)]
    for user in users:
        account_get(kind=AccountKind.WALLET, user=user)
    dicts, recharges = [], []
    for i in range(12):
        user = users[i % 3]
        recharge = _recharge(user, f"pi_kill_{i}", currency=("USD", "EUR", "GBP")[i % 3])
        recharges.append(recharge)
        dicts.append(
            _intent(
                recharge.payment_intent,
                status="succeeded",
                amount=gateway.to_minor(recharge.price),
                currency=str(recharge.price.currency),
                user_id=user.pk,
            )
        )
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps(dicts))
    # The second page's journal rows wait on this uncommitted one with the key of one of its
    # recharges: the page has flipped its recharges when we kill it.
    target = recharges[7]
    with transaction.atomic(), connection.cursor() as cursor:
        LedgerTransaction.objects.create(kind="recharge", idempotency_key=target.ledger_key)
        run = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, str(listing)],
            cwd=REPO,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        backend = None
        deadline = time.monotonic() + 90
        while backend is None and time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            backend = row[0] if row else None
            if backend is None:
                assert run.poll() is None, run.communicate()
                time.sleep(0.05)
        assert backend is not None, "the run never waited"
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        transaction.set_rollback(True)  # the held journal row goes too

    statuses = {
        r.pk: r.status for r in Recharge.objects.filter(payment_intent__startswith="pi_kill_")
    }
    assert [statuses[r.pk] for r in recharges[:5]] == [RechargeStatus.SUCCEEDED] * 5
    assert [statuses[r.pk] for r in recharges[5:]] == [RechargeStatus.PENDING] * 7
    assert LedgerTransaction.objects.filter(kind="recharge").count() == 5

    monkeypatch.setattr(reconciliation, "RECONCILE_PAGE", 5)
    _listing(monkeypatch, _objects(dicts))
    rerun = payments_reconcile()
    assert rerun.counts["credited"] == 7
    assert LedgerTransaction.objects.filter(kind="recharge").count() == 12
    for user in users:
        wallet = Account.objects.get(kind=AccountKind.WALLET, user=user)
        assert wallet.balance == 700 * 4
    payments_reconcile()  # the receipts no task wrote (none runs here)
    assert OutboxEmail.objects.filter(event__startswith="recharge_receipt:").count() == 12
    assert {name: f for name, f in run_checks() if f} == {}
