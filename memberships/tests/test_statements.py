"""A payout statement shows membership months as their own lines (held like gifts)."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from accounts.tests.factories import UserFactory
from creators.services import earnings_release
from gifts.tests.factories import fund
from memberships.tests.factories import join, make_tier
from payouts.models import Payout
from payouts.services import payout_batch_run
from payouts.statements import payout_statement, statement_csv
from payouts.tests.factories import make_payout_creator

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "one-by-one"])
def test_membership_months_are_statement_lines_after_the_hold(set_based):
    creator = make_payout_creator()
    tier = make_tier(creator, name="Gold", coins=2500)
    fan = fund(UserFactory(username="loyal"), 5000)
    join(fan, creator, tier)
    # Held like gifts: nothing to pay before the hold ends.
    earnings_release(creator=creator, now=timezone.now())
    payout_batch_run(set_based=set_based)
    assert not Payout.objects.filter(creator=creator).exists()
    hold = timedelta(days=django_settings.EARNINGS_HOLD_DAYS)
    earnings_release(creator=creator, now=timezone.now() + hold)
    payout_batch_run(set_based=set_based)
    payout = Payout.objects.get(creator=creator)
    statement = payout_statement(payout=payout)
    assert statement.membership_diamonds == 2500 == payout.diamonds
    assert [(g.context, g.label) for g in statement.groups] == [("memberships", "Memberships")]
    (row,) = statement.lines
    assert (row.kind, row.sender) == ("membership", "loyal")
    assert "Gold" in row.memo
    assert ",membership," in statement_csv(statement)
