"""Payout destination takeover (issue #14, item 8): a stolen token or session cannot redirect
the next payout. Changing the method needs the password; a new destination is held for
``PAYOUT_DESTINATION_HOLD_HOURS``; the sender re-checks the method when it sends."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import PASSWORD
from payouts.models import Payout, PayoutMethod, PayoutStatus, Rail
from payouts.services import payout_batch_run, payout_send, payouts_send_released
from payouts.tests.factories import VALID_IBAN, available, in_payout, make_payout_creator
from staff.models import AuditLog
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

NEW_IBAN = "GB82WEST12345698765432"


def portal(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_api_method_change_needs_the_password():
    creator = make_payout_creator(4000)  # verified manual method
    api = client_for(creator.user)
    body = {"rail": "manual", "account_holder": "Mallory", "iban": NEW_IBAN}

    missing = api.put("/api/v1/payouts/method/", body, format="json")
    wrong = api.put("/api/v1/payouts/method/", {**body, "password": "guess"}, format="json")

    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "validation_error"
    assert "password" in missing.json()["error"]["fields"]
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "password_incorrect"
    method = PayoutMethod.objects.get(creator=creator)
    assert (method.iban, method.is_verified) == (VALID_IBAN, True)  # nothing changed
    assert AuditLog.objects.filter(
        action="password_confirm_failed", object_id=str(creator.user.pk)
    ).exists()

    ok = api.put("/api/v1/payouts/method/", {**body, "password": PASSWORD}, format="json")

    assert ok.status_code == 200
    assert ok.json()["verified"] is False
    method.refresh_from_db()
    assert method.iban == NEW_IBAN
    assert timezone.now() - method.destination_changed_at < timedelta(minutes=1)
    change = AuditLog.objects.get(action="payout_method_set", object_id=str(method.pk))
    assert change.after["iban_last4"] == "5432"
    assert NEW_IBAN not in str(change.after)


def test_portal_method_change_has_a_password_confirmation_step():
    creator = make_payout_creator(4000)
    client = portal(creator.user)
    details = {"rail": "manual", "account_holder": "Mallory", "iban": NEW_IBAN}

    step_one = client.post("/creator/payout-method/", details)
    wrong = client.post(
        "/creator/payout-method/", {**details, "step": "confirm", "password": "guess"}
    )

    assert step_one.status_code == 200
    page = step_one.content.decode()
    assert "Confirm with your password" in page
    assert "IBAN ending 5432" in page
    assert wrong.status_code == 200
    assert "That password is not right" in wrong.content.decode()
    assert PayoutMethod.objects.get(creator=creator).iban == VALID_IBAN

    done = client.post(
        "/creator/payout-method/", {**details, "step": "confirm", "password": PASSWORD}
    )

    assert done.status_code == 302
    assert PayoutMethod.objects.get(creator=creator).iban == NEW_IBAN


def test_a_payout_to_a_new_destination_waits_and_says_until_when(
    eager_celery, settings, django_capture_on_commit_callbacks
):
    settings.PAYOUT_DESTINATION_HOLD_HOURS = 72
    changed = timezone.now() - timedelta(hours=1)
    creator = make_payout_creator(4000, destination_changed_at=changed)  # verified already
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)

    payout = payout_send(payout_id=payout.pk)

    until = changed + timedelta(hours=72)
    assert payout.status == PayoutStatus.REQUESTED
    assert payout.held_until == until
    assert payout.sent_at is None
    assert in_payout(creator) == 4000
    row = client_for(creator.user).get("/api/v1/payouts/").json()["results"][0]
    assert row["held_until"] is not None
    assert row["status_reason"].startswith("Held until")
    assert "72 hours" in row["status_reason"]
    page = portal(creator.user).get("/creator/").content.decode()
    assert "Held until" in page
    assert "security hold" in page
    assert payouts_send_released() == 0  # not yet

    # 72 hours later, the hourly task sends it.
    PayoutMethod.objects.filter(creator=creator).update(
        destination_changed_at=changed - timedelta(hours=72)
    )
    Payout.objects.filter(pk=payout.pk).update(held_until=until - timedelta(hours=72))
    with django_capture_on_commit_callbacks(execute=True):
        assert payouts_send_released() == 1
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PROCESSING  # manual: in the next bank run


def test_the_sender_rechecks_the_method_changed_between_select_and_send(connect_fake):
    creator = make_payout_creator(
        4000, rail=Rail.STRIPE, stripe_account_id=connect_fake.add_account(payouts_enabled=True)
    )
    payout_batch_run()  # selected while verified, to the old account
    payout = Payout.objects.get(creator=creator)
    # The attacker switches to a bank account they control (then staff even verify it).
    PayoutMethod.objects.filter(creator=creator).update(
        rail=Rail.MANUAL,
        account_holder="Mallory",
        iban=NEW_IBAN,
        is_verified=True,
        destination_changed_at=timezone.now(),
    )

    payout = payout_send(payout_id=payout.pk)

    assert payout.status == PayoutStatus.FAILED
    assert payout.failure_code == "destination_changed"
    assert connect_fake.transfers_for_payout(payout.pk) == []
    assert (available(creator), in_payout(creator)) == (4000, 0)
    row = client_for(creator.user).get("/api/v1/payouts/").json()["results"][0]
    assert "changed after this payout was made" in row["status_reason"]


def test_the_sender_rechecks_verification(connect_fake):
    account = connect_fake.add_account(payouts_enabled=True)
    creator = make_payout_creator(4000, rail=Rail.STRIPE, stripe_account_id=account)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    PayoutMethod.objects.filter(creator=creator).update(is_verified=False)

    payout = payout_send(payout_id=payout.pk)

    assert payout.status == PayoutStatus.FAILED
    assert payout.failure_code == "method_unverified"
    assert connect_fake.transfers_for_payout(payout.pk) == []
    assert available(creator) == 4000
