"""The "payout destination changed" security email and its undo link."""

import re

import pytest

from accounts.tests.factories import PASSWORD
from notifications.models import EmailCategory, EmailStatus, OutboxEmail
from payouts.models import PayoutMethod
from payouts.services import payout_method_set
from payouts.tests.factories import VALID_IBAN, make_payout_creator

pytestmark = pytest.mark.django_db
NEW_IBAN = "GB82WEST12345698765432"


def change(creator):
    payout_method_set(
        user=creator.user,
        password=PASSWORD,
        rail="manual",
        account_holder="Mallory",
        iban=NEW_IBAN,
    )
    (mail,) = OutboxEmail.objects.filter(user=creator.user, template="payout_destination_changed")
    return mail, re.search(r"/creator/payout-method/undo/\S+/", mail.body_text).group(0)


def test_a_change_mails_the_owner_and_the_link_puts_the_old_destination_back(client):
    creator = make_payout_creator(0)
    mail, path = change(creator)
    # Security mail: sent even though this address was never verified.
    assert mail.category == EmailCategory.SECURITY
    assert mail.status == EmailStatus.PENDING
    assert "ending 5432" in mail.body_text
    assert "ending 3000" in mail.body_text
    method = PayoutMethod.objects.get(creator=creator)
    assert (method.iban, method.is_verified) == (NEW_IBAN, False)

    page = client.get(path)
    assert page.status_code == 200
    assert b"ending 3000" in page.content
    assert client.post(path).status_code == 200
    method.refresh_from_db()
    assert (method.iban, method.account_holder, method.is_verified) == (
        VALID_IBAN,
        "Ada Lovelace",
        True,
    )
    assert method.destination_changed_at is None
    again = client.post(path)
    assert again.status_code == 400
    assert b"already undone" in again.content


def test_a_forged_or_expired_link_changes_nothing(client, settings):
    creator = make_payout_creator(0)
    _mail, path = change(creator)
    assert client.post(path[:-3] + "xx/").status_code == 400
    settings.PAYOUT_DESTINATION_HOLD_HOURS = 0  # the hold (and the link) are over
    assert client.post(path).status_code == 400
    assert PayoutMethod.objects.get(creator=creator).iban == NEW_IBAN
