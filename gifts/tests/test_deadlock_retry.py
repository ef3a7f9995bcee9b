"""The one-statement gift runs again when PostgreSQL picks it as a deadlock victim (found by the
outside fuzz run, #22: two gifts of one sender at once; the statement rolled back whole)."""

import psycopg
import pytest
from django.db import OperationalError, connection

from accounts.tests.factories import UserFactory
from gifts.models import GiftEvent
from gifts.services import gift_send
from gifts.services.one_statement import GIFT_SEND_FUNCTION
from gifts.tests.factories import GiftFactory, fund, make_creator
from wallets.ledger_checks import run_checks
from wallets.services import wallet_get

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as in a request


class FailFirst:
    """Fails the first ``times`` calls of the gift function as PostgreSQL would (Django's
    OperationalError caused by psycopg's error for ``sqlstate``), before they reach the server."""

    def __init__(self, error: type[psycopg.Error], times: int = 1):
        self.error, self.times, self.calls = error, times, 0

    def __call__(self, execute, sql, params, many, context):
        if GIFT_SEND_FUNCTION in sql:
            self.calls += 1
            if self.calls <= self.times:
                raise OperationalError("injected") from self.error()
        return execute(sql, params, many, context)


def _world():
    GiftFactory(slug="rose", coins=5)
    make_creator("victim")
    return fund(UserFactory(), 100)


@pytest.mark.parametrize(
    "error", [psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure]
)
def test_a_deadlock_victim_is_sent_again_once(settings, error):
    settings.GIFT_SEND_SQL = True
    sender = _world()
    fault = FailFirst(error, times=2)

    with connection.execute_wrapper(fault):
        event = gift_send(sender=sender, creator_handle="victim", gift_slug="rose", client_key="k")

    assert fault.calls == 3
    assert event.coins == 5
    assert GiftEvent.objects.filter(sender=sender).count() == 1
    assert wallet_get(user=sender).balance == 95
    assert {name: f for name, f in run_checks() if f} == {}


def test_other_database_errors_and_endless_deadlocks_are_not_retried_forever(settings):
    settings.GIFT_SEND_SQL = True
    sender = _world()
    refused = FailFirst(psycopg.errors.QueryCanceled)
    endless = FailFirst(psycopg.errors.DeadlockDetected, times=100)

    with connection.execute_wrapper(refused), pytest.raises(OperationalError):
        gift_send(sender=sender, creator_handle="victim", gift_slug="rose", client_key="a")
    with connection.execute_wrapper(endless), pytest.raises(OperationalError):
        gift_send(sender=sender, creator_handle="victim", gift_slug="rose", client_key="b")

    assert refused.calls == 1
    assert endless.calls == 4  # the first call and three retries
    assert wallet_get(user=sender).balance == 100
    assert not GiftEvent.objects.filter(sender=sender).exists()
