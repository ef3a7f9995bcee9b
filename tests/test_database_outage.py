"""While PostgreSQL is down, restarting or unreachable (issue #23): the API answers 503
``database_unavailable`` with ``Retry-After`` in the error format, portal pages a short 503
page, ``/readyz`` says so at once, tasks retry until the database is back, and beat keeps its
schedule. The database really goes away: the test connection runs through a proxy
(``tests/pg_outage.py``) that refuses, cuts or blackholes it.
"""

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, OperationalError, close_old_connections, connection
from django.test import RequestFactory

from accounts.tests.factories import UserFactory
from config.errors import DatabaseUnavailable, ServiceBusy, database_error
from tests.helpers import client_for, idem
from tests.pg_outage import PgProxy, point_at

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def proxy():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    pg = PgProxy(
        connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"])
    )
    with point_at(pg):
        yield pg
    pg.close()


def end_of_request() -> None:
    """What Django's request_finished signal does after every real request (the test client
    leaves it out): a connection that failed and is no longer usable is dropped."""
    close_old_connections()


def assert_database_unavailable(response) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["fields"] == {}
    assert "Idempotency-Key" in error["message"]


def test_api_answers_503_with_retry_after_while_the_database_is_down(proxy):
    user = UserFactory()
    api = client_for(user)
    assert api.get("/api/v1/wallet/").status_code == 200

    proxy.down()
    assert_database_unavailable(api.get("/api/v1/wallet/"))
    end_of_request()
    # A money POST, and a request that must authenticate its token first (a new client).
    body = {"creator": "nobody", "gift": "rose", "quantity": 1}
    assert_database_unavailable(api.post("/api/v1/gifts/send/", body, format="json", **idem()))
    end_of_request()
    assert_database_unavailable(client_for_token(api).get("/api/v1/wallet/"))
    end_of_request()

    proxy.up()
    assert api.get("/api/v1/wallet/").status_code == 200


def client_for_token(api):
    from rest_framework.test import APIClient

    fresh = APIClient()
    fresh.credentials(**api._credentials)
    return fresh


def test_a_stale_connection_after_a_restart_is_503_once_then_reconnects(proxy):
    api = client_for(UserFactory())
    assert api.get("/api/v1/wallet/").status_code == 200
    proxy.cut()  # PostgreSQL restarted: the pooled connection is dead, the database is up
    assert_database_unavailable(api.get("/api/v1/wallet/"))
    end_of_request()
    assert api.get("/api/v1/wallet/").status_code == 200


def test_an_unreachable_database_host_fails_fast_not_a_hang(proxy, settings):
    from django.conf import settings as live

    assert live.DATABASES["default"]["OPTIONS"]["connect_timeout"] == 5
    api = client_for(UserFactory())
    connection.settings_dict["OPTIONS"]["connect_timeout"] = 2
    try:
        proxy.blackhole()
        started = time.monotonic()
        response = api.get("/api/v1/wallet/")
        elapsed = time.monotonic() - started
    finally:
        connection.settings_dict["OPTIONS"]["connect_timeout"] = 5
    assert_database_unavailable(response)
    assert elapsed < 15, elapsed  # bounded by connect_timeout, not by the client's patience


def test_portal_pages_answer_a_short_503_page(proxy):
    from django.test import Client

    browser = Client()
    browser.force_login(UserFactory())
    assert browser.get("/wallet/").status_code == 200
    proxy.down()
    response = browser.get("/wallet/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    text = response.content.decode()
    assert "Back in a moment" in text
    assert "Something went wrong" not in text


def test_errors_outside_views_reach_the_same_503_through_the_500_handler():
    from config.views import server_error

    factory = RequestFactory()
    for path, kind in (("/api/v1/wallet/", "application/json"), ("/wallet/", "text/html")):
        try:
            raise OperationalError("server closed the connection unexpectedly")
        except OperationalError:
            response = server_error(factory.get(path))
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert response["Content-Type"].startswith(kind)
    try:
        raise ValueError("a bug")
    except ValueError:
        assert server_error(factory.get("/api/v1/wallet/")).status_code == 500


def test_what_counts_as_the_database_being_away():
    """Lost connections are database_unavailable; an error the server reports about the
    statement (here a statement timeout) is service_busy; integrity errors are not ours."""
    assert isinstance(database_error(OperationalError("connection refused")), DatabaseUnavailable)
    with pytest.raises(OperationalError) as caught, connection.cursor() as cursor:  # noqa: PT012 (the timeout is reset either way)
        cursor.execute("SET statement_timeout = 10")
        try:
            cursor.execute("SELECT pg_sleep(1)")
        finally:
            cursor.execute("RESET statement_timeout")
    assert caught.value.__cause__.sqlstate == "57014"
    assert isinstance(database_error(caught.value), ServiceBusy)
    assert database_error(IntegrityError("duplicate key")) is None


def test_readyz_says_the_database_is_down_at_once_and_recovers_by_itself(proxy, client):
    from config.health import checks_forget

    checks_forget()
    assert client.get("/readyz").status_code == 200
    proxy.down()
    response = client.get("/readyz")  # within READYZ_CACHE_SECONDS of the last probe
    assert response.status_code == 503
    assert response.json()["down"] == ["database"]
    proxy.up()
    assert client.get("/readyz").status_code == 200
    proxy.cut()  # a stale connection is not a database that is down
    assert client.get("/readyz").status_code == 200


@pytest.fixture
def eager_retries(monkeypatch):
    """Run a task in this process with its retries (``apply``): a retry runs at once instead
    of after its countdown, and must not be raised as the test's error."""
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)


def test_the_payout_batch_task_retries_until_the_database_is_back(proxy, eager_retries):
    from payouts.models import Payout
    from payouts.tasks import payout_batch_task
    from payouts.tests.factories import make_payout_creator

    creator = make_payout_creator(diamonds=5000)
    proxy.down(back_after=2)  # two more connections refused, then it is back
    summary = payout_batch_task.apply().get()
    assert proxy.refused == 2
    assert Payout.objects.filter(creator=creator).count() == 1, summary


def test_reconciliation_task_retries_until_the_database_is_back(proxy, eager_retries):
    from payouts.tasks import reconcile_task
    from wallets.models import ReconciliationRun

    proxy.down(back_after=3)
    summary = reconcile_task.apply().get()
    assert proxy.refused == 3
    assert "payments: done" in summary, summary  # (the payout side needs a rail fake)
    assert ReconciliationRun.objects.filter(kind="payments", status="done").count() == 1


def test_beat_keeps_its_schedule_through_an_outage(proxy, monkeypatch):
    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler as Stock

    from config.beat import DatabaseScheduler
    from config.celery import app

    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="outage-probe",
        task="wallets.tasks.rollup_hot_accounts_task",
        interval=every,
        last_run_at=timezone.now() - timedelta(minutes=1),
    )
    sent: list[str] = []
    scheduler = DatabaseScheduler(app=app)
    monkeypatch.setattr(
        scheduler, "apply_entry", lambda entry, producer=None: sent.append(entry.name)
    )
    monkeypatch.setattr(type(scheduler), "producer", None)

    proxy.down()
    scheduler._last_full_sync -= timedelta(minutes=10)  # due for its full re-read
    with pytest.raises(OperationalError):
        Stock.tick(scheduler)  # the stock scheduler: the exception would end beat
    for _ in range(3):
        scheduler._last_full_sync -= timedelta(minutes=10)
        assert scheduler.tick() == DatabaseScheduler.outage_retry_seconds

    proxy.up()
    sent.clear()
    deadline = time.monotonic() + 10
    while "outage-probe" not in sent and time.monotonic() < deadline:
        time.sleep(min(scheduler.tick(), 0.2))
    assert "outage-probe" in sent
    scheduler.sync()  # write the last-run times now: an exit hook would, after the test DB is gone


def test_a_stripe_webhook_while_the_database_is_down_is_503_not_500(proxy, client):
    """Found by the chaos run: the webhook answered 500 (webhook_processing_failed) while the
    database was down. Stripe retries either way, but the documented answer is 503."""
    from wallets.models import StripeEvent
    from wallets.tests.factories import event_payload, post_event

    payload = event_payload("payment_intent.succeeded", {"id": "pi_chaos_down", "metadata": {}})
    proxy.down()
    assert_database_unavailable(post_event(client, payload))
    end_of_request()

    proxy.up()
    assert post_event(client, payload).status_code == 200  # Stripe's retry is applied
    assert StripeEvent.objects.filter(type="payment_intent.succeeded").count() == 1
