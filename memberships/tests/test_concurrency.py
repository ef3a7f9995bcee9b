"""Real threads against PostgreSQL: two renewal runs at once, duplicate joins and gifts."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from gifts.tests.factories import fund, make_creator
from memberships.models import ChargeKind, Membership, MembershipCharge
from memberships.services import membership_gift, memberships_renew
from memberships.tests.factories import join, make_due, make_tier
from wallets.ledger_checks import run_checks
from wallets.models import Account, AccountKind
from wallets.services import account_balance

pytestmark = pytest.mark.django_db(transaction=True)


def run_at_once(*functions):
    """Start every function at the same moment, each on its own thread and connection."""
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)
    errors: list = []

    def worker(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def coins_of(user) -> int:
    return Account.objects.get(kind=AccountKind.WALLET, user=user).balance


def test_two_renewal_runs_at_once_debit_each_member_once():
    creator = make_creator("busy")
    tier = make_tier(creator, coins=100)
    viewers = [fund(UserFactory(), 1000) for _ in range(12)]
    for viewer in viewers:
        join(viewer, creator, tier)
    due = max(Membership.objects.values_list("current_period_end", flat=True))
    due += timedelta(minutes=1)

    results, errors = run_at_once(
        lambda: memberships_renew(now=due, chunk_size=2),
        lambda: memberships_renew(now=due, chunk_size=2),
    )
    assert errors == []
    # The two runs shared the work; together they renewed everyone exactly once.
    assert sum(r.renewed for r in results) == 12
    assert [coins_of(v) for v in viewers] == [800] * 12
    assert MembershipCharge.objects.filter(kind=ChargeKind.RENEWAL).count() == 12
    assert set(Membership.objects.values_list("months", flat=True)) == {2}
    assert account_balance(creator.pending_account) == 2400
    assert [p for _, p in run_checks() if p] == []


def test_the_same_membership_renewed_by_two_runs_at_once_is_debited_once():
    creator = make_creator("single")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership
    due = membership.current_period_end + timedelta(minutes=1)
    results, errors = run_at_once(*[lambda: memberships_renew(now=due)] * 4)
    assert errors == []
    assert sum(r.renewed for r in results) == 1
    assert coins_of(viewer) == 800


def test_one_join_key_sent_twice_at_once_debits_once():
    creator = make_creator("dupejoin")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    results, errors = run_at_once(
        lambda: join(viewer, creator, tier, key="same"),
        lambda: join(viewer, creator, tier, key="same"),
    )
    # One pays; the other waits for it and replays that month.
    assert errors == []
    assert sorted(r.charged for r in results) == [False, True]
    assert results[0].membership.pk == results[1].membership.pk
    assert coins_of(viewer) == 900
    assert Membership.objects.get().months == 1
    assert MembershipCharge.objects.count() == 1


def test_two_different_joins_at_once_make_one_membership():
    creator = make_creator("twojoins")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    _results, errors = run_at_once(
        lambda: join(viewer, creator, tier, key="a"), lambda: join(viewer, creator, tier, key="b")
    )
    # The second finds the first's membership and is refused (already a member).
    assert [type(e).__name__ for e in errors] == ["AlreadyMember"]
    assert coins_of(viewer) == 900
    assert Membership.objects.count() == 1


def test_gifts_to_the_same_viewer_at_once_add_both_months():
    creator = make_creator("giftrace")
    tier = make_tier(creator, coins=100)
    gifters = [fund(UserFactory(), 1000) for _ in range(3)]
    fan = UserFactory(username="lucky")

    def gift(payer):
        return lambda: membership_gift(
            payer=payer,
            creator_handle=creator.handle,
            tier_id=tier.pk,
            recipients=["lucky"],
            client_key="k",
        )

    _results, errors = run_at_once(*[gift(g) for g in gifters])
    assert errors == []
    membership = Membership.objects.get(member=fan)
    assert membership.months == 3
    assert membership.period_count == 3
    assert [coins_of(g) for g in gifters] == [900] * 3
    assert [p for _, p in run_checks() if p] == []


def test_a_gift_and_a_renewal_at_once_stay_within_the_viewers_own_daily_limit():
    """The renewal's limit check and its count are one step under the viewer's wallet lock,
    which the gift takes too: of a gift and a renewal racing for the last 100 coins of a
    viewer's own daily limit, exactly one goes through, whichever wins."""
    from django.utils import timezone

    from gifts.models import DailyGiftSpend
    from gifts.services import gift_send
    from gifts.tests.factories import GiftFactory
    from memberships.models import EventKind, MembershipEvent
    from wallets.services import SpendingLimitExceeded, spending_limits_set

    creator = make_creator("racing")
    tier = make_tier(creator, coins=100)
    GiftFactory(slug="bouquet", coins=100)
    outcomes = []
    for round_ in range(4):
        viewer = fund(UserFactory(), 1000)
        membership = join(viewer, creator, tier).membership  # 100 of today's 250
        spending_limits_set(user=viewer, daily_limit=250)
        # Its paid month ended a minute ago: the run renews it now, counting today.
        end = timezone.now() - timedelta(minutes=1)
        make_due(membership, end=end)

        def gift(viewer=viewer, round_=round_):
            try:
                gift_send(
                    sender=viewer,
                    creator_handle="racing",
                    gift_slug="bouquet",
                    client_key=f"race-{round_}",
                )
            except SpendingLimitExceeded:
                return "refused"
            return "sent"

        results, errors = run_at_once(lambda: memberships_renew(workers=1), gift)
        assert errors == []
        renewed = results[0].renewed == 1
        outcomes.append((renewed, results[1]))
        spent = DailyGiftSpend.objects.filter(user=viewer).order_by("-day").first().coins
        assert spent <= 250, f"round {round_}: {spent} coins counted against a 250 limit"
        # One of the two went through, the other was refused (the renewal into grace).
        assert (renewed, results[1]) in [(True, "refused"), (False, "sent")]
        assert coins_of(viewer) == 800
        if not renewed:
            assert MembershipEvent.objects.filter(
                membership=membership, kind=EventKind.GRACE
            ).exists()
    assert [p for _, p in run_checks() if p] == []


def test_parallel_chunks_paying_from_the_same_wallets_renew_everyone_once():
    """Members of several creators: chunks that run at once (threads, own connections) lock
    the same wallets, in id order, so they wait for each other instead of deadlocking."""
    creators = [make_creator(f"many{i}") for i in range(3)]
    tiers = [make_tier(c, coins=100) for c in creators]
    viewers = [fund(UserFactory(), 1000) for _ in range(6)]
    for viewer in viewers:
        for creator, tier in zip(creators, tiers, strict=True):
            join(viewer, creator, tier)
    due = max(Membership.objects.values_list("current_period_end", flat=True))
    due += timedelta(minutes=1)

    run = memberships_renew(now=due, chunk_size=2, workers=3)
    assert (run.renewed, run.grace, run.errors) == (18, 0, 0)
    assert [coins_of(v) for v in viewers] == [1000 - 3 * 100 - 3 * 100] * 6
    assert MembershipCharge.objects.filter(kind=ChargeKind.RENEWAL).count() == 18
    assert memberships_renew(now=due, workers=3).renewed == 0
    assert [p for _, p in run_checks() if p] == []
