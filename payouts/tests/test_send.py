import pytest
from django.core.management import call_command

from payouts.models import Payout, PayoutStatus, Rail
from payouts.rails import RailUnavailable
from payouts.services import (
    PayoutStateError,
    payout_approve,
    payout_batch_run,
    payout_cancel,
    payout_mark_failed,
    payout_mark_paid,
    payout_send,
)
from payouts.tests.factories import available, in_payout, make_payout_creator
from wallets.models import AccountKind, LedgerTransaction
from wallets.services import account_balance, platform_account

pytestmark = pytest.mark.django_db


def paid_out() -> int:
    return account_balance(platform_account(AccountKind.DIAMONDS_PAID_OUT))


def stripe_creator(fake, diamonds: int, *, enabled: bool = True):
    return make_payout_creator(
        diamonds, rail=Rail.STRIPE, stripe_account_id=fake.add_account(payouts_enabled=enabled)
    )


def test_stripe_payout_is_transferred_once_and_paid(
    connect_fake, eager_celery, django_capture_on_commit_callbacks
):
    creator = stripe_creator(connect_fake, 4000)

    with django_capture_on_commit_callbacks(execute=True):
        payout_batch_run()

    payout = Payout.objects.get(creator=creator)
    assert payout.status == PayoutStatus.PAID
    (transfer,) = connect_fake.transfers_for_payout(payout.pk)
    assert transfer["amount"] == 2000
    assert transfer["currency"] == "usd"
    assert transfer["destination"] == payout.destination
    assert payout.rail_reference == transfer["id"]
    assert (available(creator), in_payout(creator), paid_out()) == (0, 0, 4000)
    assert [e.to_status for e in payout.events.all()] == ["requested", "processing", "paid"]
    call_command("verify_ledger")


def test_rail_refusal_fails_the_payout_and_returns_the_diamonds(connect_fake):
    creator = stripe_creator(connect_fake, 4000, enabled=False)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)

    payout = payout_send(payout_id=payout.pk)

    assert payout.status == PayoutStatus.FAILED
    assert payout.failure_code == "account_invalid"
    assert "cannot receive transfers" in payout.failure_reason
    assert (available(creator), in_payout(creator), paid_out()) == (4000, 0, 0)
    assert LedgerTransaction.objects.filter(idempotency_key=f"payout-failed:{payout.pk}").exists()
    call_command("verify_ledger")
    # The diamonds are back and the next batch tries again.
    payout_batch_run()
    assert Payout.objects.filter(creator=creator, status=PayoutStatus.REQUESTED).count() == 1


def test_network_errors_are_retried_without_duplicating_the_transfer(connect_fake):
    creator = stripe_creator(connect_fake, 4000)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    # First attempt: a 500; second: the transfer is made but the answer is lost.
    connect_fake.fail_next_transfers(1, "500")
    connect_fake.fail_next_transfers(1, "drop")

    outcomes = []
    for _attempt in range(3):  # what the task's autoretry does, minus the backoff
        try:
            outcomes.append(payout_send(payout_id=payout.pk).status)
        except RailUnavailable:
            outcomes.append("retry")

    payout.refresh_from_db()
    assert outcomes == ["retry", "retry", PayoutStatus.PAID]
    assert payout.attempts == 3
    assert connect_fake.transfer_creates_per_key == {f"payout-{payout.pk}": 1}
    assert len(connect_fake.transfers_for_payout(payout.pk)) == 1
    assert paid_out() == 4000
    call_command("verify_ledger")


def test_the_rail_replays_a_transfer_for_the_same_payout_key(connect_fake):
    from payouts import rails

    destination = connect_fake.add_account()
    first = rails.transfer_create(
        payout_id=99, amount_minor=1234, currency="USD", destination=destination
    )
    again = rails.transfer_create(
        payout_id=99, amount_minor=1234, currency="USD", destination=destination
    )

    assert again.id == first.id
    assert connect_fake.transfer_creates_per_key == {"payout-99": 1}


def test_the_send_task_retries_network_and_database_outages_only():
    from config.celery import DATABASE_ERRORS
    from payouts.tasks import payout_send_task

    # A rail that cannot be reached and a database that is down (#23) are retried with
    # backoff; anything else (a refusal, a bug) is not retried blindly.
    assert set(payout_send_task.autoretry_for) == {RailUnavailable, *DATABASE_ERRORS}
    assert payout_send_task.retry_backoff


def test_a_network_error_leaves_the_payout_processing_with_its_diamonds(connect_fake):
    creator = stripe_creator(connect_fake, 4000)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    connect_fake.fail_next_transfers(1, "500")

    with pytest.raises(RailUnavailable):
        payout_send(payout_id=payout.pk)

    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PROCESSING
    assert (available(creator), in_payout(creator)) == (0, 4000)
    assert payout_send(payout_id=payout.pk).status == PayoutStatus.PAID
    assert len(connect_fake.transfers_for_payout(payout.pk)) == 1


def test_sending_twice_pays_once(connect_fake):
    creator = stripe_creator(connect_fake, 4000)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)

    payout_send(payout_id=payout.pk)
    payout_send(payout_id=payout.pk)

    assert connect_fake.transfer_requests == 1
    assert paid_out() == 4000


def test_manual_payout_waits_in_processing_then_staff_mark_it_paid(admin_user):
    creator = make_payout_creator(4000)
    payout_batch_run()
    payout = payout_send(payout_id=Payout.objects.get(creator=creator).pk)
    assert payout.status == PayoutStatus.PROCESSING

    payout = payout_mark_paid(payout=payout, actor=admin_user, reference="BANKRUN-7")

    assert payout.status == PayoutStatus.PAID
    assert payout.rail_reference == "BANKRUN-7"
    assert payout.events.last().actor == admin_user
    assert paid_out() == 4000
    with pytest.raises(PayoutStateError):
        payout_mark_paid(payout=payout, actor=admin_user)
    assert paid_out() == 4000
    call_command("verify_ledger")


def test_staff_mark_failed_returns_the_diamonds_with_the_reason(admin_user):
    creator = make_payout_creator(4000)
    payout_batch_run()
    payout = payout_send(payout_id=Payout.objects.get(creator=creator).pk)

    payout = payout_mark_failed(payout=payout, actor=admin_user, reason="IBAN closed")

    assert payout.status == PayoutStatus.FAILED
    assert payout.failure_reason == "IBAN closed"
    assert (available(creator), in_payout(creator)) == (4000, 0)
    call_command("verify_ledger")


def test_cancel_and_approve_with_actor(admin_user, settings):
    from decimal import Decimal

    settings.PAYOUT_APPROVAL_ABOVE = Decimal("15")
    settings.PAYOUT_TAX_FORM_THRESHOLD = Decimal("100000")
    first = make_payout_creator(4000)
    second = make_payout_creator(4000)
    payout_batch_run()
    p1 = Payout.objects.get(creator=first)
    p2 = Payout.objects.get(creator=second)
    assert p1.status == p2.status == PayoutStatus.AWAITING_APPROVAL

    p1 = payout_approve(payout=p1, actor=admin_user)
    p2 = payout_cancel(payout=p2, actor=admin_user, reason="suspected fraud")

    assert p1.status == PayoutStatus.REQUESTED
    assert p1.approved_by == admin_user
    assert p2.status == PayoutStatus.CANCELLED
    assert available(second) == 4000
    assert p2.events.last().actor == admin_user
    with pytest.raises(PayoutStateError):
        payout_cancel(payout=p2, actor=admin_user, reason="again")
    assert available(second) == 4000
    call_command("verify_ledger")


def test_stripe_payout_cannot_be_marked_failed_when_stripe_has_its_transfer(
    connect_fake, admin_user
):
    creator = stripe_creator(connect_fake, 4000)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    connect_fake.fail_next_transfers(1, "drop")
    with pytest.raises(RailUnavailable):
        payout_send(payout_id=payout.pk)

    with pytest.raises(PayoutStateError):
        payout_mark_failed(payout=payout, actor=admin_user, reason="looks stuck")

    assert in_payout(creator) == 4000
