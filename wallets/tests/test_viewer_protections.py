"""Issue 8 items 3-5 end to end through the API and the services, on PostgreSQL and
localstripe: spending limits, cooling-off, self refunds, chargeback policies."""

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import UserFactory
from config.errors import DomainError
from creators.services import earnings_release
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import client_for, idem
from wallets import stripe_gateway as gateway
from wallets.models import (
    Account,
    AccountKind,
    ChargebackAllocation,
    Entry,
    LedgerTransaction,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    RefundSource,
    SpendingLimits,
)
from wallets.services import (
    account_balance,
    recharge_create,
    recharge_self_refund,
    spending_limits_set,
)
from wallets.tests.factories import event_payload, post_event


def stripe_refunds(recharge) -> list:
    assert recharge.payment_intent
    return gateway.refunds_for_payment_intent(recharge.payment_intent)


def verify():
    call_command("verify_ledger")  # raises SystemExit (non-zero) when an invariant breaks


def paid(user, coins=1000) -> Recharge:
    recharge = recharge_create(
        user=user, currency="USD", coins=coins, payment_method="pm_card_visa"
    )
    assert recharge.status == RechargeStatus.SUCCEEDED
    return recharge


def coins_of(user) -> int:
    return Account.objects.get(kind=AccountKind.WALLET, user=user).balance


def gift(sender, creator, coins_each=10, quantity=1):
    GiftFactory(slug=f"g{coins_each}", coins=coins_each)
    return gift_send(
        sender=sender,
        creator_handle=creator.handle,
        gift_slug=f"g{coins_each}",
        quantity=quantity,
        client_key=str(uuid.uuid4()),
    )


def send_api(client, creator, coins_each=10, quantity=1):
    GiftFactory(slug=f"g{coins_each}", coins=coins_each)
    return client.post(
        "/api/v1/gifts/send/",
        {"creator": creator.handle, "gift": f"g{coins_each}", "quantity": quantity},
        format="json",
        **idem(),
    )


def run_threads(count, work):
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def target(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except DomainError as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


# --- Spending limits ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("gift_path")
def test_lowering_a_limit_applies_at_once_and_raising_it_after_24_hours(user, user_api):
    creator = make_creator("limited")
    fund(user, 10_000)
    answer = user_api.put("/api/v1/wallet/limits/", {"daily_limit": 100}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["daily_limit"] == 100
    assert answer.json()["daily_limit_pending"] is None
    assert send_api(user_api, creator, coins_each=60).status_code == 201
    refused = send_api(user_api, creator, coins_each=60)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "spending_limit_exceeded"

    # Raising: still 100 now, 500 in 24 hours.
    raised = user_api.put("/api/v1/wallet/limits/", {"daily_limit": 500}, format="json").json()
    assert raised["daily_limit"] == 100
    pending = raised["daily_limit_pending"]
    assert pending["limit"] == 500
    effective_at = SpendingLimits.objects.get(user=user).daily_limit_next_at
    assert effective_at is not None
    assert timedelta(hours=23, minutes=59) < effective_at - timezone.now() <= timedelta(hours=24)
    assert send_api(user_api, creator, coins_each=60).status_code == 403
    # A day later the raise is in force.
    SpendingLimits.objects.filter(user=user).update(
        daily_limit_next_at=timezone.now() - timedelta(seconds=1)
    )
    assert send_api(user_api, creator, coins_each=60).status_code == 201
    assert user_api.get("/api/v1/wallet/limits/").json()["daily_limit"] == 500

    # Lowering below what was spent today stops gifting at once.
    lowered = user_api.put("/api/v1/wallet/limits/", {"daily_limit": 50}, format="json").json()
    assert lowered["daily_limit"] == 50
    assert lowered["gifted_today"] == 120
    assert send_api(user_api, creator, coins_each=10).json()["error"]["code"] == (
        "spending_limit_exceeded"
    )
    assert coins_of(user) == 10_000 - 120
    verify()


@pytest.mark.django_db
def test_a_lowering_cancels_a_pending_raise_and_removing_a_limit_waits(user):
    spending_limits_set(user=user, monthly_limit=1000)
    spending_limits_set(user=user, monthly_limit=5000)  # pending raise
    row = spending_limits_set(user=user, monthly_limit=800)  # lower: now, and cancels it
    assert (row.monthly_limit, row.monthly_limit_next_at) == (800, None)
    row = spending_limits_set(user=user, monthly_limit=None)  # removal is a raise
    assert row.monthly_limit == 800
    assert row.monthly_limit_next_at is not None
    with pytest.raises(DomainError):
        spending_limits_set(user=user, daily_limit=-5)


@pytest.mark.django_db
@pytest.mark.usefixtures("gift_path")
def test_own_monthly_limit_refuses_gifts_and_purchases(user, user_api):
    creator = make_creator("monthly")
    fund(user, 1000)
    spending_limits_set(user=user, monthly_limit=700)
    assert send_api(user_api, creator, coins_each=400).status_code == 201
    refused = send_api(user_api, creator, coins_each=400)
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        403,
        "spending_limit_exceeded",
    )
    assert "monthly" in refused.json()["error"]["message"]
    # Purchases are capped by the same numbers, counted separately.
    bought = user_api.post(
        "/api/v1/recharges/",
        {"coins": 600, "currency": "USD", "payment_method": "pm_card_visa"},
        format="json",
        **idem(),
    )
    assert bought.status_code == 201
    assert bought.json()["status"] == "succeeded"
    over = user_api.post(
        "/api/v1/recharges/", {"coins": 200, "currency": "USD"}, format="json", **idem()
    )
    assert over.status_code == 403
    assert over.json()["error"]["code"] == "spending_limit_exceeded"
    assert Recharge.objects.filter(user=user).count() == 1
    verify()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("gift_path")
def test_concurrent_gifts_cannot_exceed_the_own_daily_limit():
    sender = fund(UserFactory(), 5000)
    creator = make_creator("rush")
    GiftFactory(slug="g10", coins=10)
    spending_limits_set(user=sender, daily_limit=100)

    def send(i):
        return gift_send(sender=sender, creator_handle="rush", gift_slug="g10", client_key=f"k{i}")

    results = run_threads(16, send)
    sent = [r for r in results if not isinstance(r, DomainError)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(sent) == 10
    assert {r.code for r in refused} == {"spending_limit_exceeded"}
    assert coins_of(sender) == 5000 - 100
    assert account_balance(Account.objects.get(pk=creator.pending_account_id)) == 100
    verify()


@pytest.mark.django_db(transaction=True)
def test_concurrent_purchases_cannot_exceed_the_own_daily_limit():
    buyer = UserFactory()
    spending_limits_set(user=buyer, daily_limit=1000)

    def buy(i):
        return recharge_create(user=buyer, currency="USD", coins=300, payment_method="pm_card_visa")

    results = run_threads(5, buy)
    bought = [r for r in results if isinstance(r, Recharge)]
    assert len(bought) == 3
    assert all(r.code == "spending_limit_exceeded" for r in results if isinstance(r, DomainError))
    assert coins_of(buyer) == 900
    verify()


@pytest.mark.django_db
def test_cooling_off_needs_confirm_only_when_opted_in_or_in_the_portal(user, user_api, client):
    # No threshold of one's own: the API contract is unchanged.
    plain = user_api.post(
        "/api/v1/recharges/", {"coins": 6000, "currency": "USD"}, format="json", **idem()
    )
    assert plain.status_code == 201
    spending_limits_set(user=user, confirm_above=1000)
    body = {"coins": 2000, "currency": "USD"}
    refused = user_api.post("/api/v1/recharges/", body, format="json", **idem())
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "confirmation_required"
    ok = user_api.post("/api/v1/recharges/", {**body, "confirm": True}, format="json", **idem())
    assert ok.status_code == 201
    assert (
        user_api.post(
            "/api/v1/recharges/", {"coins": 900, "currency": "USD"}, format="json", **idem()
        ).status_code
        == 201
    )
    # The portal asks above COOLING_OFF_ABOVE for everyone.
    other: Any = UserFactory()
    client.force_login(other)
    portal = client.post(
        "/recharge/intent/",
        {"coins": 6000, "currency": "USD"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="p1",
    )
    assert portal.status_code == 409
    assert portal.json()["error"]["code"] == "confirmation_required"
    assert not Recharge.objects.filter(user=other).exists()


@pytest.mark.django_db
def test_purchase_history_groups_by_month_with_totals(user, client):
    old = paid(user, coins=1000)
    Recharge.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    paid(user, coins=500)
    paid(user, coins=700)
    client.force_login(user)
    page = client.get("/wallet/purchases/").content.decode()
    assert "1,200 coins" in page
    assert "$17.16" in page
    assert "1,000 coins" in page
    assert "$14.30" in page


# --- Self refunds ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_self_refund_of_unspent_coins_within_48_hours(user, user_api):
    fund(user, 50)  # coins from elsewhere stay
    recharge = paid(user, coins=1000)
    headers = idem()
    answer = user_api.post(f"/api/v1/recharges/{recharge.pk}/refund/", **headers)
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["recharge"]["status"] == "refunded"
    assert body["wallet"]["coins"] == 50
    assert body["refund"]["amount"] == {"amount": "14.30", "currency": "USD"}
    assert coins_of(user) == 50
    refunds = stripe_refunds(recharge)
    assert [r.amount for r in refunds] == [1430]
    row = RechargeRefund.objects.get(recharge=recharge)
    assert (row.source, row.actor, row.stripe_id) == (RefundSource.SELF, user, refunds[0].id)
    # The same key replays; another key is refused; Stripe refunded once.
    replay = user_api.post(f"/api/v1/recharges/{recharge.pk}/refund/", **headers)
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    again = user_api.post(f"/api/v1/recharges/{recharge.pk}/refund/", **idem())
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_refunded")
    assert len(stripe_refunds(recharge)) == 1
    verify()


@pytest.mark.django_db
def test_self_refund_refused_when_spent_too_late_or_not_yours(user, user_api):
    creator = make_creator("spent")
    spent = paid(user, coins=1000)
    gift(user, creator, coins_each=10)
    answer = user_api.post(f"/api/v1/recharges/{spent.pk}/refund/", **idem())
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "coins_already_spent")
    assert coins_of(user) == 990
    assert stripe_refunds(spent) == []

    late = paid(user, coins=500)
    Recharge.objects.filter(pk=late.pk).update(
        succeeded_at=timezone.now() - timedelta(hours=48, seconds=1)
    )
    answer = user_api.post(f"/api/v1/recharges/{late.pk}/refund/", **idem())
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "refund_window_closed")

    stranger = client_for(UserFactory())
    assert stranger.post(f"/api/v1/recharges/{late.pk}/refund/", **idem()).status_code == 404
    assert not RechargeRefund.objects.exists()
    assert coins_of(user) == 1490
    verify()


@pytest.mark.django_db
def test_a_self_refund_whose_answer_was_lost_is_found_and_the_retry_gets_it(user, user_api):
    """Stripe refunded, but the request's transaction rolled back (its answer timed out):
    reconciliation books the refund as the viewer's self refund, and the retry with the same
    Idempotency-Key answers with that refund instead of 409 refund_not_allowed."""
    from wallets.services.refunds import recharge_refund_from_stripe

    recharge = paid(user, coins=800)
    # What the lost attempt left at Stripe: the refund, made with the self refund's own key.
    stripe_refund = gateway.refund_create(
        payment_intent_id=recharge.payment_intent,
        amount=recharge.price,
        idempotency_key=f"applause-self-refund-{recharge.pk}",
        metadata={"recharge_id": str(recharge.pk), "coins": "800", "reason": "self refund"},
    )
    assert coins_of(user) == 800  # our side of the attempt rolled back

    booked = recharge_refund_from_stripe(recharge=recharge, stripe_refund=stripe_refund)

    assert booked.source == RefundSource.SELF
    assert booked.request_key is None
    assert coins_of(user) == 0
    key = idem()
    retry = user_api.post(f"/api/v1/recharges/{recharge.pk}/refund/", **key)
    assert retry.status_code == 201, retry.content
    assert retry.json()["refund"]["id"] == booked.pk
    again = user_api.post(f"/api/v1/recharges/{recharge.pk}/refund/", **key)
    assert again.json()["refund"]["id"] == booked.pk
    other = user_api.post(f"/api/v1/recharges/{recharge.pk}/refund/", **idem())
    assert (other.status_code, other.json()["error"]["code"]) == (409, "already_refunded")
    assert (
        LedgerTransaction.objects.filter(idempotency_key=f"refund:self:{recharge.pk}").count() == 1
    )
    assert len(stripe_refunds(recharge)) == 1
    assert coins_of(user) == 0
    verify()


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_clicks_refund_once():
    buyer = UserFactory()
    recharge = paid(buyer, coins=700)

    def click(i):
        return recharge_self_refund(
            user=buyer, recharge_id=recharge.pk, request_key=f"click-{i % 2}"
        )

    results = run_threads(6, click)
    refunds = {r.pk for r in results if isinstance(r, RechargeRefund)}
    assert len(refunds) == 1
    assert all(r.code == "already_refunded" for r in results if isinstance(r, DomainError))
    assert coins_of(buyer) == 0
    assert len(stripe_refunds(recharge)) == 1
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert recharge.coins_refunded == 700
    verify()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("gift_path")
def test_refund_racing_a_gift_of_the_same_coins_lets_only_one_win():
    buyer = UserFactory()
    creator = make_creator("racer")
    GiftFactory(slug="g700", coins=700)
    recharge = paid(buyer, coins=700)

    def act(i):
        if i == 0:
            return recharge_self_refund(user=buyer, recharge_id=recharge.pk, request_key="r")
        return gift_send(sender=buyer, creator_handle="racer", gift_slug="g700", client_key="g")

    refunded, gifted = run_threads(2, act)
    pending = account_balance(Account.objects.get(pk=creator.pending_account_id))
    if isinstance(refunded, RechargeRefund):
        assert isinstance(gifted, DomainError)
        assert gifted.code == "insufficient_funds"
        assert pending == 0
    else:
        assert isinstance(refunded, DomainError)
        assert refunded.code == "coins_already_spent"
        assert not isinstance(gifted, DomainError)
        assert pending == 700
        assert stripe_refunds(recharge) == []
    assert coins_of(buyer) == 0
    verify()


# --- Chargebacks ----------------------------------------------------------------------------


def _dispute(recharge, dispute_id, status="needs_response"):
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": gateway.to_minor(recharge.price),
        "currency": "usd",
        "charge": "ch_unknown",
        "payment_intent": recharge.payment_intent,
        "status": status,
    }


def _creator_balances(creator):
    def bal(kind):
        account = Account.objects.filter(kind=kind, user=creator.user).first()
        return account_balance(account) if account else 0

    return {
        "pending": bal(AccountKind.DIAMONDS_PENDING),
        "available": bal(AccountKind.DIAMONDS_AVAILABLE),
        "in_payout": bal(AccountKind.DIAMONDS_IN_PAYOUT),
    }


def _chargeback_setup():
    """A creator with 800 available diamonds (released) and 300 pending from the viewer,
    who spent 600 of a 1,000-coin recharge on them (300 of it already released)."""
    creator = make_creator("streamer")
    fan = fund(UserFactory(), 500)
    gift(fan, creator, coins_each=500)
    viewer = UserFactory()
    recharge = paid(viewer, coins=1000)
    gift(viewer, creator, coins_each=300)
    earnings_release(creator=creator, now=timezone.now() + timedelta(days=30))
    gift(viewer, creator, coins_each=100, quantity=3)
    before = _creator_balances(creator)
    assert before == {"pending": 300, "available": 800, "in_payout": 0}
    return creator, viewer, recharge


@pytest.mark.django_db
def test_chargeback_claws_back_pending_only_down_to_zero(api, settings):
    settings.CHARGEBACK_POLICY = "clawback_pending"
    creator, viewer, recharge = _chargeback_setup()
    opened = event_payload("charge.dispute.created", _dispute(recharge, "dp_claw"))
    assert post_event(api, opened).status_code == 200
    assert post_event(api, opened).status_code == 200  # redelivered: nothing twice
    # The viewer's wallet gave 400, 600 were spent: the creator owes 600 diamonds, but only
    # 300 are pending; the released 800 (and anything paid) are never touched.
    assert _creator_balances(creator) == {"pending": 0, "available": 800, "in_payout": 0}
    rows = list(ChargebackAllocation.objects.order_by("id"))
    assert sum(r.coins for r in rows) == 600
    assert sum(r.diamonds_clawed for r in rows) == 300
    assert sum(r.diamonds_absorbed for r in rows) == 300
    assert rows[0].diamonds_clawed == 300
    assert rows[0].diamonds_absorbed == 0
    losses = Account.objects.get(kind=AccountKind.CHARGEBACK_LOSSES)
    assert account_balance(losses) == -300
    creator_entries = Entry.objects.filter(account__user=creator.user, transaction__kind="clawback")
    assert [(e.account.kind, e.amount) for e in creator_entries] == [("diamonds_pending", -300)]
    memo = creator_entries[0].transaction.memo
    assert "300 diamonds taken back from your pending earnings" in memo
    assert "absorbed" in memo
    # The viewer still owes the spent coins (frozen), as before.
    debt = Account.objects.get(kind=AccountKind.COIN_DEBT, user=viewer)
    assert debt.balance == -600
    verify()
    # A won dispute gives the creator the clawed diamonds back.
    won = event_payload("charge.dispute.closed", _dispute(recharge, "dp_claw", "won"))
    assert post_event(api, won).status_code == 200
    assert _creator_balances(creator)["pending"] == 300
    assert account_balance(losses) == 0
    verify()


@pytest.mark.django_db
def test_chargeback_absorbed_by_the_platform_leaves_creators_whole(api, settings):
    settings.CHARGEBACK_POLICY = "absorb"
    creator, _viewer, recharge = _chargeback_setup()
    opened = event_payload("charge.dispute.created", _dispute(recharge, "dp_absorb"))
    assert post_event(api, opened).status_code == 200
    assert _creator_balances(creator) == {"pending": 300, "available": 800, "in_payout": 0}
    losses = Account.objects.get(kind=AccountKind.CHARGEBACK_LOSSES)
    assert account_balance(losses) == -600
    rows = ChargebackAllocation.objects.all()
    assert {r.policy for r in rows} == {"absorb"}
    assert sum(r.diamonds_absorbed for r in rows) == 600
    assert sum(r.diamonds_clawed for r in rows) == 0
    memo = rows[0].transaction.memo
    assert "untouched" in memo
    assert f"recharge #{recharge.pk}" in memo
    verify()


@pytest.mark.django_db
def test_chargeback_with_unspent_coins_touches_no_creator(api, settings):
    settings.CHARGEBACK_POLICY = "clawback_pending"
    creator = make_creator("quiet")
    viewer = UserFactory()
    recharge = paid(viewer, coins=1000)
    fund(viewer, 100)
    gift(viewer, creator, coins_each=100)  # the wallet still covers the whole dispute
    opened = event_payload("charge.dispute.created", _dispute(recharge, "dp_unspent"))
    assert post_event(api, opened).status_code == 200
    assert _creator_balances(creator)["pending"] == 100
    assert not ChargebackAllocation.objects.exists()
    verify()
