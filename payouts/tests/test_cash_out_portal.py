""" "Cash out now" in the portal: the dashboard's button, the quote with the fee before
confirming, the confirmed payout, and 409 payout_open shown as a message, not an error page."""

from decimal import Decimal

import pytest
from django.test import Client

from accounts.tests.factories import PASSWORD, UserFactory
from payouts.models import Payout
from payouts.tests.factories import available, in_payout, make_payout_creator

pytestmark = pytest.mark.django_db


def portal(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP"])
def test_quote_shows_the_fee_then_confirm_pays_exactly_the_quoted_diamonds(settings, currency):
    settings.PAYOUT_CURRENCY = currency
    settings.INSTANT_PAYOUT_FEE_PCT = Decimal("1.5")
    creator = make_payout_creator(5000)  # worth 25.00
    client = portal(creator.user)
    dashboard = client.get("/creator/").content.decode()
    assert 'href="/creator/cash-out/"' in dashboard
    assert 'href="/account/notifications/"' in dashboard  # the email settings nav link

    quote = client.get("/creator/cash-out/")
    page = quote.content.decode()
    assert quote.status_code == 200
    assert "Fee (1.5 %)" in page
    assert "0.38" in page
    assert "24.62" in page
    assert 'name="diamonds" value="5000"' in page
    assert not Payout.objects.exists()  # looking at the quote changes nothing

    confirmed = client.post("/creator/cash-out/", {"diamonds": "5000"})
    assert confirmed.status_code == 302
    payout = Payout.objects.get(creator=creator)
    assert payout.is_instant
    assert payout.diamonds == 5000
    assert str(payout.fee.amount) == "0.38"
    assert str(payout.fee.currency) == currency
    assert (available(creator), in_payout(creator)) == (0, 5000)
    follow = client.get(confirmed["Location"]).content.decode()
    assert "Cash out #" in follow
    assert 'href="/creator/cash-out/"' not in follow  # a payout on its way: no button


def test_a_second_cash_out_while_one_is_open_is_409_payout_open_and_changes_nothing():
    creator = make_payout_creator(9000)
    client = portal(creator.user)
    assert client.post("/creator/cash-out/", {"diamonds": "4000"}).status_code == 302
    again = client.post("/creator/cash-out/", {"diamonds": "5000"})  # a double submit
    assert again.status_code == 409
    assert b'data-error="payout_open"' in again.content
    assert b"data-confirm-cash-out" not in again.content
    assert client.get("/creator/cash-out/").status_code == 409
    assert Payout.objects.filter(creator=creator).count() == 1
    assert available(creator) == 5000


def test_below_minimum_and_forged_input_are_shown_not_500_and_strangers_get_404(settings):
    creator = make_payout_creator(10)
    client = portal(creator.user)
    low = client.get("/creator/cash-out/")
    assert low.status_code == 200
    assert b'data-error="below_minimum"' in low.content
    forged = client.post("/creator/cash-out/", {"diamonds": "-5"})
    assert forged.status_code == 400
    assert not Payout.objects.exists()
    viewer = UserFactory()
    assert portal(viewer).get("/creator/cash-out/").status_code == 404
