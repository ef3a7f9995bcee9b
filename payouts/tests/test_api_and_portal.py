import pytest
from django.test import Client

from accounts.tests.factories import PASSWORD, UserFactory
from config.errors import InvalidInput
from payouts.models import Payout, PayoutMethod, PayoutStatus, Rail
from payouts.services import iban_normalize, payout_batch_run
from payouts.tests.factories import VALID_IBAN, make_payout_creator
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

PW = {"password": PASSWORD}


def test_payout_list_is_the_callers_own_filtered_by_status():
    mine = make_payout_creator(4000)
    theirs = make_payout_creator(5000)
    payout_batch_run()
    api = client_for(mine.user)

    body = api.get("/api/v1/payouts/").json()
    filtered = api.get("/api/v1/payouts/?status=paid").json()

    (row,) = body["results"]
    assert row["diamonds"] == 4000
    assert row["status"] == "requested"
    assert row["amount"] == {"amount": "20.00", "currency": "USD"}
    assert "next" in body
    assert filtered["results"] == []
    assert Payout.objects.get(creator=theirs).pk not in [r["id"] for r in body["results"]]
    bad = api.get("/api/v1/payouts/?status=nope")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"


def test_non_creators_get_a_clear_403():
    response = client_for(UserFactory()).get("/api/v1/payouts/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_creator"


def test_manual_method_put_validates_iban_and_never_echoes_it():
    creator = make_payout_creator(with_method=False)
    api = client_for(creator.user)
    assert api.get("/api/v1/payouts/method/").status_code == 404

    bad = api.put(
        "/api/v1/payouts/method/",
        {"rail": "manual", "account_holder": "Ada", "iban": "DE89370400440532013001", **PW},
        format="json",
    )
    ok = api.put(
        "/api/v1/payouts/method/",
        {"rail": "manual", "account_holder": "Ada", "iban": "de89 3704 0044 0532 0130 00", **PW},
        format="json",
    )

    assert bad.status_code == 400
    assert "iban" in bad.json()["error"]["fields"]
    assert ok.status_code == 200
    assert ok.json()["rail"] == "manual"
    assert ok.json()["verified"] is False
    assert ok.json()["iban_last4"] == "3000"
    assert VALID_IBAN not in ok.content.decode()
    assert PayoutMethod.objects.get(creator=creator).iban == VALID_IBAN


def test_changing_the_method_clears_verification():
    creator = make_payout_creator(4000)  # verified manual method
    api = client_for(creator.user)
    same = api.put(
        "/api/v1/payouts/method/",
        {"rail": "manual", "account_holder": "Ada Lovelace", "iban": VALID_IBAN, **PW},
        format="json",
    )
    assert same.json()["verified"] is True  # nothing changed

    changed = api.put(
        "/api/v1/payouts/method/",
        {
            "rail": "manual",
            "account_holder": "Ada Lovelace",
            "iban": "GB82WEST12345698765432",
            **PW,
        },
        format="json",
    )

    assert changed.json()["verified"] is False
    payout_batch_run()
    assert not Payout.objects.filter(creator=creator).exists()  # waits for re-verification


def test_stripe_method_answers_an_onboarding_url_and_verifies_from_stripe(connect_fake):
    from django.core.management import CommandError, call_command

    connect_fake.accounts_enabled = False
    creator = make_payout_creator(with_method=False)
    api = client_for(creator.user)

    response = api.put("/api/v1/payouts/method/", {"rail": "stripe", **PW}, format="json")

    body = response.json()
    assert response.status_code == 200
    assert body["rail"] == "stripe"
    assert body["verified"] is False
    assert body["onboarding_url"].startswith(connect_fake.url)
    method = PayoutMethod.objects.get(creator=creator)
    with pytest.raises(CommandError):
        call_command("verify_payout_method", creator.handle)  # Stripe says not yet
    connect_fake.set_payouts_enabled(method.stripe_account_id, True)
    call_command("verify_payout_method", creator.handle)
    method.refresh_from_db()
    assert method.is_verified


def test_iban_checksum():
    assert iban_normalize("GB82 WEST 1234 5698 7654 32") == "GB82WEST12345698765432"
    with pytest.raises(InvalidInput):
        iban_normalize("GB82 WEST 1234 5698 7654 33")


def test_dashboard_panel_shows_method_estimate_and_failure_words(admin_user):
    from payouts.services import payout_mark_failed, payout_send

    creator = make_payout_creator(4000)
    payout_batch_run()
    payout = payout_send(payout_id=Payout.objects.get(creator=creator).pk)
    payout_mark_failed(payout=payout, actor=admin_user, reason="IBAN closed")
    client = Client()
    client.force_login(creator.user, backend="django.contrib.auth.backends.ModelBackend")

    page = client.get("/creator/").content.decode()

    assert "IBAN ending 3000" in page
    assert "Failed" in page
    assert "your bank returned the transfer" in page
    assert "Check the account holder and IBAN" in page  # what the creator can do
    assert "20.00" in page  # next payout estimate: the returned diamonds


def test_payout_method_page_saves_a_manual_method():
    creator = make_payout_creator(with_method=False)
    client = Client()
    client.force_login(creator.user, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/creator/payout-method/").status_code == 200

    response = client.post(
        "/creator/payout-method/",
        {
            "rail": "manual",
            "account_holder": "Ada",
            "iban": "GB82WEST12345698765432",
            "step": "confirm",
            **PW,
        },
    )

    assert response.status_code == 302
    assert PayoutMethod.objects.get(creator=creator).rail == Rail.MANUAL


def test_admin_csv_export_and_mark_paid_record_the_actor():
    from staff.tests.factories import staff_user, verified_client

    admin_user = staff_user(is_superuser=True)
    creator = make_payout_creator(4000)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    client = verified_client(admin_user)
    url = "/admin/payouts/payout/"

    csv_response = client.post(
        url, {"action": "export_csv_action", "_selected_action": [payout.pk]}
    )
    # Streamed: the rows are read as the download goes, so read it before the next action.
    text = b"".join(csv_response.streaming_content).decode()
    paid_response = client.post(
        url, {"action": "mark_paid_action", "_selected_action": [payout.pk]}
    )

    assert text.splitlines()[0].startswith("payout_id,creator,account_holder,iban,amount")
    assert VALID_IBAN in text
    assert "20.00" in text
    assert paid_response.status_code == 302
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert payout.events.last().actor == admin_user


def test_admin_csv_export_reads_the_payouts_a_page_at_a_time_as_it_streams(monkeypatch):
    """Streamed in keyset pages (``WHERE id > last ORDER BY id LIMIT n``, one query each, no
    server-side cursor): never the whole bank run in memory, and fine through PgBouncer."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from payouts import admin as payouts_admin
    from staff.tests.factories import staff_user, verified_client

    monkeypatch.setattr(payouts_admin, "EXPORT_PAGE", 2)
    for i in range(5):
        make_payout_creator(4000 + i)
    make_payout_creator(4000, rail=Rail.STRIPE, stripe_account_id="acct_pages")
    payout_batch_run()
    manual = list(Payout.objects.filter(rail=Rail.MANUAL).order_by("pk"))
    everyone = Payout.objects.values_list("pk", flat=True)
    client = verified_client(staff_user(is_superuser=True))
    response = client.post(
        "/admin/payouts/payout/",
        {"action": "export_csv_action", "_selected_action": list(everyone)},
    )
    with CaptureQueriesContext(connection) as queries:
        lines = b"".join(response.streaming_content).decode().splitlines()

    assert [line.split(",")[0] for line in lines[1:]] == [str(p.pk) for p in manual]
    assert [line.split(",")[4] for line in lines[1:]] == [str(p.amount.amount) for p in manual]
    pages = [q["sql"] for q in queries if 'FROM "payouts_payout"' in q["sql"]]
    assert len(pages) == 3  # 2 + 2 + 1 rows
    assert all("LIMIT 2" in sql and "DECLARE" not in sql for sql in pages)
