"""Memberships on PostgreSQL: joining, renewal exactly once, grace and lapse, cancelling,
switching, price changes, gifts, and chargebacks of coins that paid a membership."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from accounts.tests.factories import MinorFactory, UserFactory
from config.errors import AgeRestricted, InsufficientFunds, WalletFrozen
from gifts.tests.factories import fund, make_creator
from memberships.models import (
    ChargeKind,
    EventKind,
    Membership,
    MembershipCharge,
    MembershipEvent,
    MembershipStatus,
)
from memberships.selectors import renewal_preview, tiers_of
from memberships.services import (
    AlreadyMember,
    SelfMembership,
    TierLimit,
    add_months,
    membership_cancel,
    membership_gift,
    memberships_renew,
    tier_update,
)
from memberships.tests.factories import join, make_tier
from wallets.ledger_checks import run_checks
from wallets.models import Account, AccountKind, Entry, LedgerTransaction, TransactionKind
from wallets.services import account_balance, wallet_freeze

pytestmark = pytest.mark.django_db


def coins_of(user) -> int:
    return Account.objects.get(kind=AccountKind.WALLET, user=user).balance


def pending_of(creator) -> int:
    return account_balance(creator.pending_account)


def assert_ledger_ok():
    problems = [(name, p) for name, p in run_checks() if p]
    assert problems == []


def test_add_months_clamps_to_the_month_end_from_the_anchor():
    anchor = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
    assert add_months(anchor, 1) == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
    assert add_months(anchor, 2) == datetime(2027, 3, 31, 12, 0, tzinfo=UTC)
    assert add_months(anchor, 12) == datetime(2028, 1, 31, 12, 0, tzinfo=UTC)
    assert add_months(datetime(2027, 12, 15, tzinfo=UTC), 1) == datetime(2028, 1, 15, tzinfo=UTC)


def test_join_debits_the_first_month_once_and_credits_pending_diamonds():
    creator = make_creator("mia")
    tier = make_tier(creator, coins=150)
    viewer = fund(UserFactory(), 1000)
    result = join(viewer, creator, tier, key="k1")
    assert result.charged
    membership = result.membership
    assert membership.status == MembershipStatus.ACTIVE
    assert membership.months == 1
    assert membership.current_period_end == add_months(membership.anchor, 1)
    assert coins_of(viewer) == 850
    assert pending_of(creator) == 150
    # The same key again: the same membership, nothing debited.
    again = join(viewer, creator, tier, key="k1")
    assert again.replayed
    assert again.membership.pk == membership.pk
    assert coins_of(viewer) == 850
    tx = LedgerTransaction.objects.get(kind=TransactionKind.MEMBERSHIP)
    assert tx.idempotency_key == f"membership:{viewer.pk}:k1"
    charge = MembershipCharge.objects.get()
    assert (charge.kind, charge.coins, charge.diamonds) == (ChargeKind.JOIN, 150, 150)
    # A second join on the same tier with a new key is refused: nothing debited.
    with pytest.raises(AlreadyMember):
        join(viewer, creator, tier)
    assert coins_of(viewer) == 850
    assert_ledger_ok()


def test_join_refusals_change_nothing():
    creator = make_creator("refuser")
    tier = make_tier(creator, coins=100)
    poor = fund(UserFactory(), 99)
    with pytest.raises(InsufficientFunds):
        join(poor, creator, tier)
    frozen = fund(UserFactory(), 1000)
    wallet_freeze(user=frozen, reason="test")
    with pytest.raises(WalletFrozen):
        join(frozen, creator, tier)
    minor = MinorFactory()
    with pytest.raises(AgeRestricted):
        join(minor, creator, tier)
    with pytest.raises(SelfMembership):
        join(fund(creator.user, 1000), creator, tier)
    assert not Membership.objects.exists()
    assert not LedgerTransaction.objects.filter(kind=TransactionKind.MEMBERSHIP).exists()
    assert coins_of(poor) == 99


def test_a_creator_has_three_tiers_at_most():
    creator = make_creator("three")
    for n in range(3):
        make_tier(creator, name=f"T{n}")
    with pytest.raises(TierLimit):
        make_tier(creator, name="T4")
    assert [t.position for t in tiers_of(creator_id=creator.pk)] == [1, 2, 3]


def test_renewal_debits_once_per_period_however_often_it_runs():
    creator = make_creator("renewer")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership
    first_end = membership.current_period_end
    # Not due yet: nothing.
    assert memberships_renew(now=first_end - timedelta(seconds=1)).renewed == 0
    run = memberships_renew(now=first_end + timedelta(minutes=1))
    assert run.renewed == 1
    membership.refresh_from_db()
    assert membership.months == 2
    assert membership.period_count == 2
    assert membership.current_period_end == add_months(membership.anchor, 2)
    assert coins_of(viewer) == 800
    # Rerun at the same moment, and later in the same period: nothing more.
    assert memberships_renew(now=first_end + timedelta(minutes=1)).renewed == 0
    assert memberships_renew(now=first_end + timedelta(days=20)).renewed == 0
    assert coins_of(viewer) == 800
    charge = MembershipCharge.objects.get(kind=ChargeKind.RENEWAL)
    assert charge.period_start == first_end
    assert charge.transaction.idempotency_key == (
        f"membership-renewal:{membership.pk}:{first_end.isoformat()}"
    )
    assert pending_of(creator) == 200
    assert_ledger_ok()


def test_no_coins_means_grace_then_lapse_with_notices():
    creator = make_creator("gracey")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 100)
    membership = join(viewer, creator, tier).membership
    due = membership.current_period_end
    assert memberships_renew(now=due + timedelta(minutes=1)).grace == 1
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.GRACE
    assert membership.grace_until == due + timedelta(days=3)
    assert membership.is_live  # the perks stay during grace
    grace_notice = MembershipEvent.objects.get(kind=EventKind.GRACE)
    assert grace_notice.notify
    assert "Top up" in grace_notice.message
    # Retried within grace, still broke: still in grace, no second notice.
    assert memberships_renew(now=due + timedelta(hours=5)).retry_later == 1
    assert MembershipEvent.objects.filter(kind=EventKind.GRACE).count() == 1
    # After the grace period: lapsed, nothing debited, a notice.
    assert memberships_renew(now=due + timedelta(days=3, minutes=1)).lapsed == 1
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.LAPSED
    assert not membership.is_live
    assert MembershipEvent.objects.filter(kind=EventKind.LAPSED, notify=True).count() == 1
    assert coins_of(viewer) == 0
    assert membership.months == 1
    assert_ledger_ok()


def test_paying_in_grace_keeps_the_billing_date():
    creator = make_creator("topup")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 100)
    membership = join(viewer, creator, tier).membership
    due = membership.current_period_end
    memberships_renew(now=due + timedelta(minutes=1))
    fund(viewer, 100)
    assert memberships_renew(now=due + timedelta(days=1, hours=2)).renewed == 1
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE
    assert membership.grace_until is None
    # The month paid runs from when it was due, not from when it was paid.
    assert MembershipCharge.objects.get(kind=ChargeKind.RENEWAL).period_start == due
    assert membership.current_period_end == add_months(membership.anchor, 2)
    assert coins_of(viewer) == 0


def test_a_frozen_wallet_cannot_renew():
    creator = make_creator("frosty")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership
    wallet_freeze(user=viewer, reason="chargeback")
    assert memberships_renew(now=membership.current_period_end).grace == 1
    assert coins_of(viewer) == 900


def test_cancel_runs_to_the_period_end_and_never_renews():
    creator = make_creator("canceller")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership
    cancelled = membership_cancel(member=viewer, membership_id=membership.pk)
    assert cancelled.status == MembershipStatus.CANCELLED
    assert not cancelled.renews
    assert cancelled.current_period_end == membership.current_period_end
    assert cancelled.is_live
    assert membership_cancel(member=viewer, membership_id=membership.pk).pk == membership.pk
    run = memberships_renew(now=membership.current_period_end + timedelta(days=40))
    assert run.renewed == 0
    assert coins_of(viewer) == 900
    # Someone else's membership does not exist for them.
    from memberships.services import MembershipNotFound

    with pytest.raises(MembershipNotFound):
        membership_cancel(member=UserFactory(), membership_id=membership.pk)


def test_rejoining_a_cancelled_membership_resumes_it_without_a_charge():
    creator = make_creator("resumer")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership
    membership_cancel(member=viewer, membership_id=membership.pk)
    result = join(viewer, creator, tier)
    assert not result.charged
    assert result.membership.status == MembershipStatus.ACTIVE
    assert result.membership.renews
    assert coins_of(viewer) == 900


def test_switching_tiers_takes_effect_at_the_next_renewal():
    creator = make_creator("switcher")
    basic = make_tier(creator, name="Basic", coins=100)
    gold = make_tier(creator, name="Gold", coins=300)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, basic).membership
    result = join(viewer, creator, gold)
    assert not result.charged
    assert result.membership.next_tier_id == gold.pk
    assert result.membership.tier_id == basic.pk
    assert coins_of(viewer) == 900
    preview = renewal_preview(result.membership)
    assert preview.coins == 300
    assert preview.tier_id == gold.pk
    assert preview.price_changes
    memberships_renew(now=membership.current_period_end)
    membership.refresh_from_db()
    assert membership.tier_id == gold.pk
    assert membership.next_tier_id is None
    assert membership.coins_per_month == 300
    assert coins_of(viewer) == 600


def test_a_price_change_reaches_members_after_the_notice(settings):
    settings.MEMBERSHIP_PRICE_NOTICE_DAYS = 7
    creator = make_creator("pricer")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 10_000)
    membership = join(viewer, creator, tier).membership
    tier_update(tier=tier, actor=creator.user, coins_per_month=250)
    notice = MembershipEvent.objects.get(kind=EventKind.PRICE_CHANGE, membership=membership)
    assert notice.notify
    assert "from 100 to 250" in notice.message
    membership.refresh_from_db()
    # The first renewal is 30 days away (> 7): it already costs the new price.
    assert renewal_preview(membership).coins == 250
    # New members pay the new price at once.
    other = join(fund(UserFactory(), 1000), creator, tier).membership
    assert other.coins_per_month == 250
    memberships_renew(now=membership.current_period_end)
    membership.refresh_from_db()
    assert membership.coins_per_month == 250
    assert coins_of(viewer) == 10_000 - 100 - 250


def test_a_price_change_inside_the_notice_waits_one_more_renewal(settings):
    settings.MEMBERSHIP_PRICE_NOTICE_DAYS = 7
    creator = make_creator("latepricer")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 10_000)
    membership = join(viewer, creator, tier).membership
    # Moved close to its renewal: a change now is less than 7 days before it.
    Membership.objects.filter(pk=membership.pk).update(
        current_period_end=membership.anchor + timedelta(days=3),
        next_attempt_at=membership.anchor + timedelta(days=3),
    )
    tier_update(tier=tier, actor=creator.user, coins_per_month=250)
    membership.refresh_from_db()
    assert renewal_preview(membership).coins == 100
    memberships_renew(now=membership.current_period_end)
    membership.refresh_from_db()
    assert membership.coins_per_month == 100
    assert renewal_preview(membership).coins == 250  # the renewal after that


def test_gift_memberships_add_a_month_or_start_one_that_does_not_renew():
    creator = make_creator("gifty")
    tier = make_tier(creator, coins=100)
    gifter = fund(UserFactory(username="gifter"), 1000)
    member = fund(UserFactory(username="member"), 1000)
    newbie = UserFactory(username="newbie")
    existing = join(member, creator, tier).membership
    given = membership_gift(
        payer=gifter,
        creator_handle=creator.handle,
        tier_id=tier.pk,
        recipients=["newbie", "member"],
        client_key="g1",
    )
    assert [m.member.username for m in given] == ["newbie", "member"]
    assert coins_of(gifter) == 800
    assert pending_of(creator) == 300
    existing.refresh_from_db()
    assert existing.months == 2
    assert existing.current_period_end == add_months(existing.anchor, 2)
    fresh = Membership.objects.get(member=newbie)
    assert fresh.status == MembershipStatus.ACTIVE
    assert not fresh.renews
    assert fresh.months == 1
    assert LedgerTransaction.objects.filter(idempotency_key__startswith="membership-gift:").count()
    # Replayed: the same memberships, nothing debited.
    again = membership_gift(
        payer=gifter,
        creator_handle=creator.handle,
        tier_id=tier.pk,
        recipients=["newbie", "member"],
        client_key="g1",
    )
    assert {m.pk for m in again} == {m.pk for m in given}
    assert coins_of(gifter) == 800
    assert MembershipEvent.objects.filter(kind=EventKind.GIFTED, notify=True).count() == 2
    # The gifted month ends without a charge to the recipient.
    run = memberships_renew(now=fresh.current_period_end + timedelta(minutes=1))
    assert run.lapsed == 1
    fresh.refresh_from_db()
    assert fresh.status == MembershipStatus.LAPSED
    assert coins_of(newbie) if Account.objects.filter(user=newbie).exists() else True
    assert_ledger_ok()


def test_gift_refusals(settings):
    from config.errors import InvalidInput
    from memberships.services import UnknownRecipient

    creator = make_creator("giftrefuse")
    tier = make_tier(creator, coins=100)
    gifter = fund(UserFactory(username="g2"), 1000)

    def gift(names, **kw):
        return membership_gift(
            payer=kw.get("payer", gifter),
            creator_handle=creator.handle,
            tier_id=tier.pk,
            recipients=names,
            client_key=str(uuid.uuid4()),
        )

    with pytest.raises(UnknownRecipient):
        gift(["nobody-here"])
    with pytest.raises(InvalidInput):
        gift(["g2"])  # yourself
    with pytest.raises(InvalidInput):
        gift([creator.user.username])
    UserFactory(username="dup")
    with pytest.raises(InvalidInput):
        gift(["dup", "dup"])
    with pytest.raises(InvalidInput):
        gift([])
    settings.MEMBERSHIP_GIFT_MAX = 1
    UserFactory(username="dup2")
    with pytest.raises(InvalidInput):
        gift(["dup", "dup2"])
    with pytest.raises(InsufficientFunds):
        gift(["dup"], payer=UserFactory())
    assert coins_of(gifter) == 1000
    assert not Membership.objects.exists()


def test_a_killed_worker_mid_run_leaves_nothing_half_done(monkeypatch):
    """A worker dies (the process, not an exception it could catch) in the middle of a chunk:
    the chunk's transaction never commits, and the next run renews everyone exactly once."""
    from memberships.services import renewal_chunk as services

    creator = make_creator("crashy")
    tier = make_tier(creator, coins=100)
    viewers = [fund(UserFactory(), 1000) for _ in range(5)]
    members = [join(v, creator, tier).membership for v in viewers]
    due = max(m.current_period_end for m in members) + timedelta(minutes=1)

    class WorkerKilled(BaseException):
        pass

    # Killed after the chunk's ledger rows are written, before the memberships advance.
    real = services._record

    def dies_mid_chunk(*args, **kwargs):
        raise WorkerKilled()

    monkeypatch.setattr(services, "_record", dies_mid_chunk)
    with pytest.raises(WorkerKilled):
        memberships_renew(now=due, chunk_size=10)
    monkeypatch.setattr(services, "_record", real)
    # Nothing of the dead chunk stuck (the test's own transaction is still open here, so we
    # check the rows, not a commit: the chunk's savepoint was rolled back with it).
    assert not LedgerTransaction.objects.filter(
        idempotency_key__startswith="membership-renewal:"
    ).exists()
    assert memberships_renew(now=due).renewed == 5
    assert memberships_renew(now=due).renewed == 0  # a rerun charges nobody twice
    assert {coins_of(v) for v in viewers} == {800}
    assert MembershipCharge.objects.filter(kind=ChargeKind.RENEWAL).count() == 5
    assert_ledger_ok()


def test_verify_ledger_covers_membership_money():
    creator = make_creator("verified")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership
    call_command("verify_ledger")
    # A charge row that claims more than the ledger moved is reported.
    charge = MembershipCharge.objects.get()
    MembershipCharge.objects.filter(pk=charge.pk).update(coins=101)
    problems = dict(run_checks())
    assert problems["membership charges = membership transactions"]
    MembershipCharge.objects.filter(pk=charge.pk).update(coins=100)
    Membership.objects.filter(pk=membership.pk).update(months=2)
    assert dict(run_checks())["each membership month paid once"]


def test_verify_ledger_names_membership_transactions_the_charges_do_not_match():
    creator = make_creator("mismatch")
    tier = make_tier(creator, coins=100)
    membership = join(fund(UserFactory(), 1000), creator, tier).membership
    charge = MembershipCharge.objects.get(membership=membership)
    name = "membership charges = membership transactions"
    assert dict(run_checks())[name] == []
    # Diamonds the entries did not credit.
    MembershipCharge.objects.filter(pk=charge.pk).update(diamonds=charge.diamonds + 1)
    (problem,) = dict(run_checks())[name]
    assert f"membership transaction {charge.transaction_id}: charges say 100 coins" in problem
    assert "entries say 100 / 100" in problem
    # A membership transaction with no charge rows at all (the charge moved to another one).
    other = LedgerTransaction.objects.exclude(kind=TransactionKind.MEMBERSHIP).first()
    MembershipCharge.objects.filter(pk=charge.pk).update(
        diamonds=charge.diamonds, transaction_id=other.pk
    )
    problems = dict(run_checks())[name]
    assert any(
        f"membership transaction {charge.transaction_id}: charges say None coins" in p
        for p in problems
    )
    assert any(f"points at transaction {other.pk} of kind {other.kind}" in p for p in problems)


def test_entries_of_a_membership_month_look_like_a_gift():
    creator = make_creator("entries")
    tier = make_tier(creator, coins=120)
    viewer = fund(UserFactory(), 1000)
    join(viewer, creator, tier)
    tx = LedgerTransaction.objects.get(kind=TransactionKind.MEMBERSHIP)
    kinds = sorted((e.account.kind, e.amount) for e in Entry.objects.filter(transaction=tx))
    assert kinds == sorted(
        [
            (AccountKind.WALLET, -120),
            (AccountKind.COINS_SPENT, 120),
            (AccountKind.DIAMOND_ISSUANCE, -120),
            (AccountKind.DIAMONDS_PENDING, 120),
        ]
    )
