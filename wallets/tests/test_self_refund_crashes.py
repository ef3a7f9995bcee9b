"""Issue 17 item 1, for self refunds: a refund killed before, during or after each of its
atomic phases (``wallets/services/self_refund.py``), mirroring the recharges'
``test_crash_recovery.py``.

Phase 1 commits the ``requested`` refund row (the coins taken back) with the idempotency
record; Stripe is called outside any transaction under ``applause-self-refund-r<row id>``;
phase 3 records the answer. Each test kills the request at one point (an exception standing
for the process dying: what was committed stays, what was not rolls back, what Stripe did
stays) and ends it the ways the house does: the client's retry with the same Idempotency-Key,
the finisher of abandoned refunds, reconciliation, the webhook. Every ending must conserve money: the
viewer refunded once at Stripe exactly when the coins left the wallet, never twice.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import stripe
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import IdempotencyRecord
from accounts.tests.factories import UserFactory
from tests.helpers import client_for
from wallets import stripe_gateway as gateway
from wallets.models import (
    Account,
    AccountKind,
    LedgerTransaction,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    RefundSource,
    RefundStatus,
)
from wallets.services import (
    payments_reconcile,
    recharge_create,
    self_refunds_finish_abandoned,
)
from wallets.services import self_refund as self_refund_module
from wallets.tests.factories import event_payload, post_event


class Crash(Exception):
    """The web process dying at this point."""


def _kill_at(monkeypatch, target, name: str, *, after: bool = False) -> None:
    """Make ``target.name`` kill the request once: before it runs, or after it ran."""
    real = getattr(target, name)
    state = {"armed": True}

    def dying(*args, **kwargs):
        if not state["armed"]:
            return real(*args, **kwargs)
        state["armed"] = False
        if after:
            real(*args, **kwargs)
        raise Crash

    monkeypatch.setattr(target, name, dying)


@pytest.fixture
def bought(db):
    user = UserFactory(username=f"refunder-{uuid.uuid4().hex[:16]}")
    recharge = recharge_create(user=user, currency="USD", coins=900, payment_method="pm_card_visa")
    assert recharge.status == RechargeStatus.SUCCEEDED
    return user, recharge, client_for(user)


def _post(api, recharge: Recharge, key: str):
    return api.post(f"/api/v1/recharges/{recharge.pk}/refund/", HTTP_IDEMPOTENCY_KEY=key)


def _post_and_die(api, recharge: Recharge, key: str) -> None:
    with pytest.raises(Crash):
        _post(api, recharge, key)


def _coins(user) -> int:
    return Account.objects.get(kind=AccountKind.WALLET, user=user).balance


def _stripe_refunds(recharge: Recharge) -> list:
    return gateway.refunds_for_payment_intent(str(recharge.payment_intent))


def _assert_refunded_once(user, recharge: Recharge) -> RechargeRefund:
    """Refunded at Stripe once, the row succeeded with that refund, the coins gone once."""
    [at_stripe] = _stripe_refunds(recharge)
    [row] = RechargeRefund.objects.filter(recharge=recharge)
    assert (row.source, row.status, row.stripe_id) == (
        RefundSource.SELF,
        RefundStatus.SUCCEEDED,
        at_stripe.id,
    )
    assert at_stripe.metadata["refund_id"] == str(row.pk)
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert recharge.coins_refunded == recharge.coins
    assert (
        LedgerTransaction.objects.filter(idempotency_key=f"refund:self:{recharge.pk}").count() == 1
    )
    assert _coins(user) == 0
    call_command("verify_ledger")  # SystemExit (non-zero) when an invariant breaks
    return row


def _abandon(recharge: Recharge) -> None:
    RechargeRefund.objects.filter(recharge=recharge).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    self_refunds_finish_abandoned()


# --- Phase 1: the requested row, the coins and the idempotency record, one transaction -------


def test_killed_inside_phase_1_leaves_nothing_and_the_retry_starts_afresh(monkeypatch, bought):
    user, recharge, api = bought
    key = str(uuid.uuid4())
    _kill_at(monkeypatch, self_refund_module, "self_refund_debit", after=True)

    _post_and_die(api, recharge, key)

    assert not RechargeRefund.objects.filter(recharge=recharge).exists()
    assert not IdempotencyRecord.objects.filter(user=user, key=key).exists()
    assert _coins(user) == 900  # rolled back together
    assert _stripe_refunds(recharge) == []
    response = _post(api, recharge, key)
    assert response.status_code == 201, response.content
    _assert_refunded_once(user, recharge)


@pytest.mark.parametrize("ending", ["retry", "finisher"])
def test_killed_after_phase_1_before_stripe(monkeypatch, bought, ending):
    user, recharge, api = bought
    key = str(uuid.uuid4())
    _kill_at(monkeypatch, gateway, "refund_create")

    _post_and_die(api, recharge, key)

    [row] = RechargeRefund.objects.filter(recharge=recharge)
    assert (row.status, row.stripe_id) == (RefundStatus.REQUESTED, "")
    assert _coins(user) == 0  # taken back in phase 1: nothing can spend them meanwhile
    assert IdempotencyRecord.objects.get(user=user, key=key).response_status == 0
    assert _stripe_refunds(recharge) == []
    # Another key is refused meanwhile (one self refund per recharge).
    other = _post(api, recharge, str(uuid.uuid4()))
    assert (other.status_code, other.json()["error"]["code"]) == (409, "already_refunded")
    if ending == "retry":
        response = _post(api, recharge, key)
        assert response.status_code == 201, response.content
        assert response.json()["refund"]["id"] == row.pk
    else:
        _abandon(recharge)
        late = _post(api, recharge, key)  # the client comes back after all: told the result
        assert (late.status_code, late.json()["refund"]["id"]) == (201, row.pk)
    _assert_refunded_once(user, recharge)


# --- Phase 2: Stripe, outside any transaction -----------------------------------------------


@pytest.mark.parametrize("ending", ["retry", "finisher", "reconcile", "webhook"])
def test_killed_during_the_stripe_call_refunds_once(monkeypatch, bought, ending):
    user, recharge, api = bought
    key = str(uuid.uuid4())
    # Stripe refunded; its answer never reached us.
    _kill_at(monkeypatch, gateway, "refund_create", after=True)

    _post_and_die(api, recharge, key)

    [row] = RechargeRefund.objects.filter(recharge=recharge)
    assert row.status == RefundStatus.REQUESTED
    assert len(_stripe_refunds(recharge)) == 1
    if ending == "retry":
        # localstripe ignores idempotency keys: only looking first keeps this to one refund.
        response = _post(api, recharge, key)
        assert (response.status_code, response.json()["refund"]["id"]) == (201, row.pk)
    elif ending == "finisher":
        _abandon(recharge)
    elif ending == "reconcile":
        payments_reconcile()
        assert _post(api, recharge, key).json()["refund"]["id"] == row.pk
    else:
        [made] = _stripe_refunds(recharge)
        event = {
            "id": made.id,
            "object": "refund",
            "payment_intent": recharge.payment_intent,
            "charge": made.charge,
        }
        answer = post_event(APIClient(), event_payload("refund.created", event))
        assert answer.json()["result"] == "1 refunds applied", answer.content
        assert _post(api, recharge, key).json()["refund"]["id"] == row.pk
    _assert_refunded_once(user, recharge)


# --- Phase 3: the answer, a second transaction ----------------------------------------------


@pytest.mark.parametrize("after", [False, True])
def test_killed_in_phase_3_the_retry_answers_the_one_refund(monkeypatch, bought, after):
    user, recharge, api = bought
    key = str(uuid.uuid4())
    _kill_at(monkeypatch, self_refund_module, "self_refund_complete", after=after)

    _post_and_die(api, recharge, key)

    row = RechargeRefund.objects.get(recharge=recharge)
    assert row.status == (RefundStatus.SUCCEEDED if after else RefundStatus.REQUESTED)
    response = _post(api, recharge, key)
    assert (response.status_code, response.json()["refund"]["id"]) == (201, row.pk)
    replay = _post(api, recharge, key)
    assert replay["Idempotent-Replayed"] == "true"
    _assert_refunded_once(user, recharge)


# --- Stripe away, Stripe refusing ------------------------------------------------------------


def test_stripe_unreachable_is_503_and_the_retry_finishes(monkeypatch, bought):
    user, recharge, api = bought
    key = str(uuid.uuid4())
    real = gateway.refund_create

    def unreachable(**kwargs):
        raise stripe.APIConnectionError("connection refused")

    monkeypatch.setattr(gateway, "refund_create", unreachable)
    response = _post(api, recharge, key)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "payment_provider_unavailable"
    assert response["Retry-After"].isdigit()
    assert RechargeRefund.objects.get(recharge=recharge).status == RefundStatus.REQUESTED
    assert _coins(user) == 0

    monkeypatch.setattr(gateway, "refund_create", real)
    cache.clear()  # the "Stripe is away" note
    response = _post(api, recharge, key)
    assert response.status_code == 201, response.content
    _assert_refunded_once(user, recharge)


def test_stripe_refusing_gives_the_coins_back(monkeypatch, bought):
    user, recharge, api = bought
    key = str(uuid.uuid4())

    def refused(**kwargs):
        raise stripe.InvalidRequestError("Charge has been disputed", None, http_status=400)

    monkeypatch.setattr(gateway, "refund_create", refused)
    response = _post(api, recharge, key)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "refund_not_allowed")
    row = RechargeRefund.objects.get(recharge=recharge)
    assert row.status == RefundStatus.FAILED
    assert _coins(user) == 900  # back, once
    recharge.refresh_from_db()
    assert (recharge.status, recharge.coins_refunded) == (RechargeStatus.SUCCEEDED, 0)
    assert _post(api, recharge, key).json()["error"]["code"] == "refund_not_allowed"  # replayed
    again = _post(api, recharge, str(uuid.uuid4()))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "refund_not_allowed")
    assert _coins(user) == 900
    assert _stripe_refunds(recharge) == []
    call_command("verify_ledger")


def test_a_second_stripe_refund_of_one_self_refund_is_never_applied(bought):
    """Only a Stripe that ignores idempotency keys makes one (localstripe did, for a retry
    after Stripe was away): it is left to staff (reconciliation's discrepancy), not booked."""
    from wallets.services.refunds import recharge_refund_from_stripe

    user, recharge, api = bought
    assert _post(api, recharge, str(uuid.uuid4())).status_code == 201
    row = _assert_refunded_once(user, recharge)
    duplicate = gateway.refund_create(
        payment_intent_id=str(recharge.payment_intent),
        amount=recharge.price,
        idempotency_key=f"dup-{uuid.uuid4()}",
        metadata={
            "recharge_id": str(recharge.pk),
            "refund_id": str(row.pk),
            "coins": str(recharge.coins),
            "reason": "self refund",
        },
    )

    assert recharge_refund_from_stripe(recharge=recharge, stripe_refund=duplicate) is None
    assert list(RechargeRefund.objects.filter(recharge=recharge)) == [row]
    recharge.refresh_from_db()
    assert recharge.amount_refunded == recharge.price
    assert _coins(user) == 0
