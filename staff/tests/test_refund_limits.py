"""Staff refunds (issue #14, item 4): support's cap is cumulative (per recharge, per member
and rolling day, race-safe), coins already spent need finance, and a refund of gifted
coins treats creators as a chargeback does (CHARGEBACK_POLICY), on their statement."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import UserFactory
from config.errors import DomainError
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, make_creator
from notifications.models import OutboxEmail
from staff.models import AuditLog
from staff.permissions import FINANCE, SUPPORT
from staff.tests.factories import staff_user
from wallets import stripe_gateway as gateway
from wallets.ledger_checks import run_checks
from wallets.models import (
    Account,
    AccountKind,
    ChargebackAllocation,
    Entry,
    Recharge,
    RechargeRefund,
    RechargeStatus,
)
from wallets.services import (
    account_balance,
    payments_reconcile,
    recharge_create,
    recharge_refund_by_staff,
)

LIMIT = 500


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.SUPPORT_REFUND_LIMIT_COINS = LIMIT


def paid(user=None, coins=1000, currency="USD") -> Recharge:
    user = user or UserFactory(username=f"buyer-{uuid.uuid4().hex[:12]}")
    recharge = recharge_create(
        user=user, currency=currency, coins=coins, payment_method="pm_card_visa"
    )
    assert recharge.status == RechargeStatus.SUCCEEDED
    return recharge


def refund(actor, recharge, coins=None):
    return recharge_refund_by_staff(
        actor=actor,
        recharge=recharge,
        reason="customer asked",
        coins=coins,
        idempotency_key=uuid.uuid4().hex,
    )


def code_of(call) -> str:
    try:
        call()
    except DomainError as exc:
        return exc.code
    return "ok"


def stripe_refunded(recharge) -> int:
    assert recharge.payment_intent
    return sum(r.amount for r in gateway.refunds_for_payment_intent(recharge.payment_intent))


def failures():
    return [(name, problems) for name, problems in run_checks() if problems]


@pytest.mark.django_db
def test_support_cap_is_cumulative_per_recharge():
    support, other_support, finance = staff_user(SUPPORT), staff_user(SUPPORT), staff_user(FINANCE)
    recharge = paid(currency="EUR")
    refund(support, recharge, coins=300)
    # 20 slices of a big refund do not pass: the recharge's total counts, whoever asks.
    assert code_of(lambda: refund(support, recharge, coins=300)) == "refund_limit_exceeded"
    assert code_of(lambda: refund(other_support, recharge, coins=201)) == "refund_limit_exceeded"
    refund(other_support, recharge, coins=200)  # exactly up to the cap
    recharge.refresh_from_db()
    assert recharge.coins_refunded == 500
    refund(finance, recharge)  # finance has no cap: the rest
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert stripe_refunded(recharge) == gateway.to_minor(recharge.price)
    assert AuditLog.objects.filter(action="recharge_refund").count() == 3
    assert failures() == []


@pytest.mark.django_db
def test_support_cap_is_per_member_over_a_rolling_day():
    support = staff_user(SUPPORT)
    first, second = paid(), paid(currency="GBP")
    refund(support, first, coins=400)
    assert code_of(lambda: refund(support, second, coins=101)) == "refund_limit_exceeded"
    assert stripe_refunded(second) == 0
    refund(support, second, coins=100)
    # A day later the member's earlier refunds no longer count (the recharges' still do).
    RechargeRefund.objects.update(created_at=timezone.now() - timedelta(hours=25))
    third = paid()
    refund(support, third, coins=500)
    assert code_of(lambda: refund(support, first, coins=101)) == "refund_limit_exceeded"


@pytest.mark.django_db
def test_a_refund_into_coin_debt_needs_finance():
    support, finance = staff_user(SUPPORT), staff_user(FINANCE)
    creator = make_creator(f"c{uuid.uuid4().hex[:8]}")
    recharge = paid(coins=400)
    GiftFactory(slug="rose", coins=100)
    gift_send(
        sender=recharge.user, creator_handle=creator.handle, gift_slug="rose", client_key="k1"
    )
    # 300 coins left: refunding all 400 would put the viewer into debt.
    assert code_of(lambda: refund(support, recharge)) == "refund_needs_finance"
    assert stripe_refunded(recharge) == 0
    assert not RechargeRefund.objects.exists()
    refund(support, recharge, coins=300)  # what the wallet still holds is fine
    done = refund(finance, recharge)
    assert (done.coins, done.coins_to_debt) == (100, 100)
    debt = Account.objects.get(kind=AccountKind.COIN_DEBT, user=recharge.user)
    assert debt.balance == -100
    assert failures() == []


@pytest.mark.django_db
def test_a_double_submit_refunds_and_audits_once():
    support = staff_user(SUPPORT)
    recharge = paid(currency="GBP")
    first, again = (
        recharge_refund_by_staff(
            actor=support, recharge=recharge, reason="x", coins=100, idempotency_key="form-1"
        )
        for _ in range(2)
    )
    assert first.pk == again.pk
    assert RechargeRefund.objects.count() == 1
    assert AuditLog.objects.filter(action="recharge_refund").count() == 1
    assert stripe_refunded(recharge) == gateway.to_minor(first.amount)


@pytest.mark.django_db
def test_a_viewer_cannot_refund_as_staff():
    recharge = paid()
    with pytest.raises(PermissionDenied):
        refund(UserFactory(), recharge, coins=10)
    assert not RechargeRefund.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_refunds_at_once_cannot_both_pass_the_cap():
    support = staff_user(SUPPORT)
    recharges = [paid(), paid()]
    barrier = threading.Barrier(2)
    codes: list[str] = []

    def run(recharge):
        try:
            barrier.wait()
            codes.append(code_of(lambda: refund(support, recharge, coins=300)))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(r,)) for r in recharges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == ["ok", "refund_limit_exceeded"]
    assert RechargeRefund.objects.count() == 1
    assert sum(stripe_refunded(r) > 0 for r in recharges) == 1


# --- A refund of gifted coins: creators treated as in a chargeback -------------------------


def _gifted(creator, coins=1000, spent=600) -> Recharge:
    recharge = paid(coins=coins)
    GiftFactory(slug=f"g{spent}", coins=spent)
    gift_send(
        sender=recharge.user,
        creator_handle=creator.handle,
        gift_slug=f"g{spent}",
        client_key=uuid.uuid4().hex,
    )
    return recharge


def _pending(creator) -> int:
    account = Account.objects.get(kind=AccountKind.DIAMONDS_PENDING, user=creator.user)
    return account_balance(account)


@pytest.mark.django_db
@pytest.mark.parametrize("policy", ["clawback_pending", "absorb"])
def test_staff_refund_of_gifted_coins_follows_the_chargeback_policy(settings, policy):
    settings.CHARGEBACK_POLICY = policy
    creator = make_creator(f"c{uuid.uuid4().hex[:8]}")
    recharge = _gifted(creator)
    assert _pending(creator) == 600
    done = refund(staff_user(FINANCE), recharge)
    assert done.coins_to_debt == 600
    rows = list(ChargebackAllocation.objects.filter(refund=done))
    assert sum(r.coins for r in rows) == 600
    assert {r.policy for r in rows} == {policy}
    assert rows[0].dispute is None
    losses = account_balance(Account.objects.get(kind=AccountKind.CHARGEBACK_LOSSES))
    if policy == "clawback_pending":
        assert _pending(creator) == 0
        assert losses == 0
    else:
        assert _pending(creator) == 600
        assert losses == -600
    # On the creator's statement, with the reason.
    line = Entry.objects.filter(
        transaction__kind="clawback", transaction__reference=f"refund:{done.pk}"
    ).first()
    assert line is not None
    memo = line.transaction.memo
    assert f"Refund of recharge #{recharge.pk}" in memo
    assert "by Applause support" in memo
    assert "600 coins of 1 gift(s) to you were refunded" in memo
    # The creator is told it was a refund (not a chargeback at the viewer's bank).
    (notice,) = OutboxEmail.objects.filter(template="chargeback_creator", user=creator.user)
    assert notice.subject.startswith("A refund on gifts you received")
    assert "refunded to them" in notice.body_text
    assert "bank" not in notice.body_text
    assert failures() == []


@pytest.mark.django_db
def test_refund_made_in_stripe_of_gifted_coins_claws_back_too(settings):
    settings.CHARGEBACK_POLICY = "clawback_pending"
    creator = make_creator(f"c{uuid.uuid4().hex[:8]}")
    recharge = _gifted(creator)
    gateway.client().v1.refunds.create(params={"payment_intent": recharge.payment_intent})
    run = payments_reconcile()
    assert run.status == "done", run.error
    applied = RechargeRefund.objects.get(recharge=recharge)
    assert applied.coins_to_debt == 600
    assert _pending(creator) == 0
    memo = ChargebackAllocation.objects.get(refund=applied).transaction.memo
    assert "through Stripe" in memo
    assert failures() == []
