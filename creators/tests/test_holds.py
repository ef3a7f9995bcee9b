import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import UserFactory
from creators.models import Creator
from creators.selectors import creator_earnings
from creators.services import earnings_release
from creators.tasks import release_earnings_task
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from wallets.models import LedgerTransaction, TransactionKind


def _gift(sender, coins_key, quantity=1):
    return gift_send(
        sender=sender,
        creator_handle="star",
        gift_slug="rose",
        quantity=quantity,
        client_key=coins_key,
    )


@pytest.fixture
def setup(db):
    GiftFactory(slug="rose", coins=1)
    creator = make_creator("star")
    sender = fund(UserFactory(), 1000)
    return creator, sender


def test_nothing_matures_before_the_hold(setup):
    creator, sender = setup
    _gift(sender, "a", 10)
    results = earnings_release(creator=creator, now=timezone.now() + timedelta(days=6))
    assert results[0].diamonds == 0
    earnings = creator_earnings(creator=creator)
    assert (earnings.diamonds_pending, earnings.diamonds_available) == (10, 0)


def test_release_after_the_hold_with_time_travel(setup, settings):
    settings.EARNINGS_HOLD_DAYS = 7
    creator, sender = setup
    _gift(sender, "a", 10)
    later = timezone.now() + timedelta(days=7, seconds=5)
    # A gift sent "later" stays on hold even though the first one matured.
    _gift(sender, "b", 5)
    [result] = earnings_release(creator=creator, now=later)
    assert result.diamonds == 15  # both were stamped before later - 7 days
    earnings = creator_earnings(creator=creator)
    assert (earnings.diamonds_pending, earnings.diamonds_available) == (0, 15)
    assert str(earnings.available_value) in ("$0.08", "US$0.08")
    # Idempotent: running again releases nothing.
    assert earnings_release(creator=creator, now=later)[0].diamonds == 0
    assert earnings_release(now=later) == []
    assert LedgerTransaction.objects.filter(kind=TransactionKind.RELEASE).count() == 1
    assert Creator.objects.get(pk=creator.pk).released_until == later - timedelta(days=7)
    call_command("verify_ledger", stdout=StringIO())


def test_only_matured_part_is_released(setup):
    creator, sender = setup
    _gift(sender, "a", 10)
    middle = timezone.now()
    _gift(sender, "b", 5)
    [result] = earnings_release(creator=creator, now=middle + timedelta(days=7))
    assert result.diamonds == 10
    earnings = creator_earnings(creator=creator)
    assert (earnings.diamonds_pending, earnings.diamonds_available) == (5, 10)
    [result] = earnings_release(creator=creator, now=middle + timedelta(days=8))
    assert result.diamonds == 5
    assert creator_earnings(creator=creator).diamonds_available == 15


def test_command_and_task_print_and_release(setup):
    creator, sender = setup
    _gift(sender, "a", 10)
    out = StringIO()
    call_command("release_earnings", stdout=out)
    assert out.getvalue().startswith("release_earnings: 0 diamonds released to 0 creators")
    assert release_earnings_task() == 0
    assert creator_earnings(creator=creator).diamonds_pending == 10


@pytest.mark.django_db(transaction=True)
def test_two_releases_at_once_release_once():
    GiftFactory(slug="rose", coins=1)
    creator = make_creator("star")
    senders = [fund(UserFactory(), 100) for _ in range(5)]
    for i, sender in enumerate(senders):
        gift_send(
            sender=sender, creator_handle="star", gift_slug="rose", quantity=i + 1, client_key="x"
        )
    later = timezone.now() + timedelta(days=8)
    barrier = threading.Barrier(4)
    released, errors = [], []

    def run():
        try:
            barrier.wait(timeout=30)
            released.extend(r.diamonds for r in earnings_release(now=later))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(released) == 15
    earnings = creator_earnings(creator=creator)
    assert (earnings.diamonds_pending, earnings.diamonds_available) == (0, 15)
    call_command("verify_ledger", stdout=StringIO())
