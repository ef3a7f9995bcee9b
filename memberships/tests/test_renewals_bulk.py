"""The set-based renewal run on PostgreSQL (conservation, one wallet paying several months in
one chunk, exactly once) and memberships counting towards the viewer's own spending limits."""

from datetime import timedelta

import pytest

from accounts.tests.factories import UserFactory
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from memberships.models import ChargeKind, EventKind, MembershipCharge, MembershipEvent
from memberships.services import memberships_renew
from memberships.tests.factories import join, make_due, make_tier
from memberships.tests.test_services import assert_ledger_ok, coins_of, pending_of
from wallets.models import Entry, LedgerTransaction
from wallets.services import SpendingLimitExceeded, spending_limits_set

pytestmark = pytest.mark.django_db


def test_a_chunk_renews_set_based_once_with_one_wallet_paying_twice():
    alpha, beta = make_creator("alpha"), make_creator("beta")
    tier_a, tier_b = make_tier(alpha, coins=100), make_tier(beta, coins=70)
    rich = fund(UserFactory(), 1000)  # member of both: both months from one wallet
    short = fund(UserFactory(), 240)  # both joined (170), then 70 left: only the cheaper renews
    others = [fund(UserFactory(), 300) for _ in range(6)]
    memberships = [join(rich, alpha, tier_a).membership, join(rich, beta, tier_b).membership]
    memberships += [join(short, alpha, tier_a).membership, join(short, beta, tier_b).membership]
    memberships += [join(v, alpha, tier_a).membership for v in others]
    due = max(m.current_period_end for m in memberships) + timedelta(minutes=1)
    before_a, before_b = pending_of(alpha), pending_of(beta)

    run = memberships_renew(now=due, chunk_size=4)  # several chunks, members split across them
    assert (run.renewed, run.grace, run.errors) == (9, 1, 0)
    assert coins_of(rich) == 1000 - 2 * 170
    assert coins_of(short) == 0  # 70 left: the 100 one cannot renew, the 70 one does
    assert {coins_of(v) for v in others} == {100}
    renewals = MembershipCharge.objects.filter(kind=ChargeKind.RENEWAL)
    assert renewals.count() == 9
    assert sum(c.coins for c in renewals) == 170 + 70 + 6 * 100
    assert pending_of(alpha) + pending_of(beta) - before_a - before_b == sum(
        c.diamonds for c in renewals
    )
    # Each renewal: one journal row, four entries, the payer as actor (statement lines).
    journals = LedgerTransaction.objects.filter(idempotency_key__startswith="membership-renewal:")
    assert journals.count() == 9
    assert Entry.objects.filter(transaction__in=journals).count() == 9 * 4
    assert set(journals.values_list("actor_id", flat=True)) == {rich.pk, short.pk} | {
        v.pk for v in others
    }
    assert MembershipEvent.objects.filter(kind=EventKind.RENEWED, notify=True).count() == 9
    grace = MembershipEvent.objects.get(kind=EventKind.GRACE)
    assert "not enough coins" in grace.message
    assert_ledger_ok()  # sums, balance_after chains, membership charges = ledger

    again = memberships_renew(now=due)  # a rerun: nobody is charged twice
    assert again.renewed == 0
    assert MembershipCharge.objects.filter(kind=ChargeKind.RENEWAL).count() == 9
    assert_ledger_ok()


def test_memberships_count_towards_the_viewers_own_daily_limit_with_gifts():
    creator, other = make_creator("limited"), make_creator("other")
    tier, tier_other = make_tier(creator, coins=100), make_tier(other, coins=100)
    viewer = fund(UserFactory(), 1000)
    spending_limits_set(user=viewer, daily_limit=150)
    join(viewer, creator, tier)  # 100 of today's 150
    with pytest.raises(SpendingLimitExceeded):
        join(viewer, other, tier_other)  # 200 > 150
    gift = GiftFactory(slug="rose", coins=60)
    with pytest.raises(SpendingLimitExceeded):  # 100 + 60 > 150: the month counts for gifts
        gift_send(sender=viewer, creator_handle="limited", gift_slug=gift.slug, client_key="g1")
    assert coins_of(viewer) == 900
    assert_ledger_ok()


def test_a_renewal_over_the_viewers_own_monthly_limit_goes_to_grace_not_debited():
    creator = make_creator("monthly")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership
    spending_limits_set(user=viewer, monthly_limit=50)  # lowering applies at once
    due = membership.current_period_end + timedelta(minutes=1)
    # The renewal falls in a new month only if the join was late in one; the limit is
    # checked against the renewal's own month either way: 100 > 50.
    run = memberships_renew(now=due)
    assert (run.renewed, run.grace) == (0, 1)
    assert coins_of(viewer) == 900
    grace = MembershipEvent.objects.get(kind=EventKind.GRACE)
    assert "over your own spending limit" in grace.message
    assert_ledger_ok()


def test_a_run_started_before_midnight_checks_the_limit_of_the_day_it_counts_in():
    """The run's ``now`` says which memberships are due; the coins are counted on the day the
    chunk pays them, and the viewer's own limit is checked against that same day."""
    from django.utils import timezone

    from gifts.models import DailyGiftSpend

    creator = make_creator("midnight")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership  # 100 counted today
    spending_limits_set(user=viewer, daily_limit=150)
    now = timezone.now()
    make_due(membership, end=now - timedelta(days=1, minutes=1))
    # The run started yesterday (its ``now``); this chunk pays today, where 100 are spent.
    run = memberships_renew(now=now - timedelta(days=1))
    assert (run.renewed, run.grace) == (0, 1)
    assert coins_of(viewer) == 900
    assert max(DailyGiftSpend.objects.filter(user=viewer).values_list("coins", flat=True)) == 100
    assert_ledger_ok()
