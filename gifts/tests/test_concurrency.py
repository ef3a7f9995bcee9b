"""Real threads against PostgreSQL: conservation, not just "no exception"."""

import threading
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.tests.factories import UserFactory
from gifts.models import GiftEvent, GiftTally
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import client_for
from wallets.models import Account, LedgerTransaction
from wallets.services import account_balance, wallet_get

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("gift_path"),  # the SQL function and the Python reference
]


def run_threads(count, work):
    """Start ``count`` threads together; each closes its own DB connection when done."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def target(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def pending(creator):
    return account_balance(Account.objects.get(pk=creator.pending_account_id))


def test_forty_threads_one_sender_affording_twenty():
    GiftFactory(slug="heart", coins=5)
    creator = make_creator("star")
    sender = fund(UserFactory(), 100)
    clients = [client_for(sender) for _ in range(40)]

    def send(i):
        response = clients[i].post(
            "/api/v1/gifts/send/",
            {"creator": "star", "gift": "heart"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        return response.status_code, response.json()

    results = run_threads(40, send)
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 20 + [402] * 20
    assert {body["error"]["code"] for status, body in results if status == 402} == {
        "insufficient_funds"
    }
    assert wallet_get(user=sender).balance == 0
    assert GiftEvent.objects.count() == 20
    assert pending(creator) == 100
    call_command("verify_ledger")


def test_fifty_senders_one_creator_conserves_diamonds(settings):
    settings.DIAMONDS_PER_COIN_NUM, settings.DIAMONDS_PER_COIN_DEN = 1, 2
    GiftFactory(slug="corgi", coins=299)
    GiftFactory(slug="rose", coins=1)
    creator = make_creator("star")
    senders = [fund(UserFactory(), 5000) for _ in range(50)]

    def send(i):
        spent = 0
        for n in range(6):
            slug, quantity = ("corgi", 1) if n % 2 else ("rose", 7)
            event = gift_send(
                sender=senders[i],
                creator_handle="star",
                gift_slug=slug,
                quantity=quantity,
                client_key=f"t{i}-{n}",
            )
            spent += event.coins
        return spent

    spent = run_threads(50, send)
    assert spent == [3 * 299 + 3 * 7] * 50
    expected = sum(s * 1 // 2 for s in [299] * 150 + [7] * 150)
    assert pending(creator) == expected
    assert sum(wallet_get(user=s).balance for s in senders) == 50 * 5000 - sum(spent)
    assert sum(GiftTally.objects.values_list("coins", flat=True)) == sum(spent)
    call_command("verify_ledger")


def test_ten_concurrent_copies_of_one_key_are_one_gift():
    GiftFactory(slug="rose", coins=1)
    creator = make_creator("star")
    sender = fund(UserFactory(), 100)
    key = str(uuid.uuid4())
    clients = [client_for(sender) for _ in range(10)]

    def send(i):
        response = clients[i].post(
            "/api/v1/gifts/send/",
            {"creator": "star", "gift": "rose", "quantity": 3},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key,
        )
        return response.status_code, response.json()["id"]

    results = run_threads(10, send)
    assert {status for status, _ in results} == {201}
    assert len({gift_id for _, gift_id in results}) == 1
    assert GiftEvent.objects.count() == 1
    assert wallet_get(user=sender).balance == 97
    assert pending(creator) == 3
    call_command("verify_ledger")


def test_ten_concurrent_service_calls_with_one_client_key():
    GiftFactory(slug="rose", coins=1)
    make_creator("star")
    sender = fund(UserFactory(), 100)

    def send(i):
        event = gift_send(sender=sender, creator_handle="star", gift_slug="rose", client_key="k")
        return event.pk, event.created

    results = run_threads(10, send)
    assert len({pk for pk, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 9 + [True]
    assert LedgerTransaction.objects.filter(kind="gift").count() == 1
    assert wallet_get(user=sender).balance == 99
