"""The split shown before paying (issue #19) is what the payout statement pays for that gift."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from accounts.tests.factories import UserFactory
from creators.services import earnings_release
from gifts.tests.factories import GiftFactory, fund
from payouts.models import Payout
from payouts.services import payout_batch_run
from payouts.statements import payout_statement
from payouts.tests.factories import make_payout_creator
from tests.helpers import client_for, idem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gift_path")]


@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP"])
def test_the_quote_is_what_the_statement_pays(api, settings, currency):
    settings.DIAMOND_VALUE = Decimal("0.0071")  # not a round number: rounding shows
    GiftFactory(slug="lion", name="Lion", coins=2999)
    creator = make_payout_creator()
    quote = api.get(
        f"/api/v1/gifts/quote/?creator={creator.handle}&gift=lion&quantity=3&currency={currency}"
    ).json()
    fan = client_for(fund(UserFactory(), 10_000))
    body = {"creator": creator.handle, "gift": "lion", "quantity": 3, "currency": currency}
    sent = fan.post("/api/v1/gifts/send/", body, format="json", **idem()).json()
    assert sent["creator_value"] == quote["creator_value"]
    earnings_release(
        creator=creator,
        now=timezone.now() + timedelta(days=django_settings.EARNINGS_HOLD_DAYS),
    )

    payout_batch_run()

    statement = payout_statement(payout=Payout.objects.get(creator=creator))
    (line,) = statement.lines
    assert line.gift_event_id == sent["id"]
    assert line.diamonds == quote["diamonds"] == 8997
    # Exactly, in the payout currency (the statement's line value), whatever the viewer paid in.
    assert Decimal(quote["payout_value"]["amount"]) == line.value
    assert quote["payout_value"]["currency"] == statement.currency
    if currency == statement.currency:
        assert Decimal(quote["creator_value"]["amount"]) == line.value.quantize(Decimal("0.01"))
    # The payout itself (one gift): the statement's value rounded down to the cent.
    assert statement.amount.amount == line.value.quantize(Decimal("0.01"), "ROUND_DOWN")
