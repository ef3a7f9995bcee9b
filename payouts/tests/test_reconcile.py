import time

import pytest
from django.core.management import call_command

from payouts.models import Payout, PayoutStatus, Rail
from payouts.rails import RailUnavailable
from payouts.services import payout_batch_run, payout_cancel, payout_send, payouts_reconcile
from payouts.tests.factories import in_payout, make_payout_creator
from wallets.models import Discrepancy, ReconciliationRun

pytestmark = pytest.mark.django_db


def stripe_payout(fake, diamonds=4000) -> Payout:
    creator = make_payout_creator(diamonds, rail=Rail.STRIPE, stripe_account_id=fake.add_account())
    payout_batch_run()
    return Payout.objects.get(creator=creator)


def test_a_transfer_whose_answer_was_lost_is_recorded_paid_once(connect_fake):
    payout = stripe_payout(connect_fake)
    connect_fake.fail_next_transfers(1, "drop")
    with pytest.raises(RailUnavailable):
        payout_send(payout_id=payout.pk)

    first = payouts_reconcile()
    second = payouts_reconcile()

    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert (first.recovered, second.recovered) == (1, 0)
    assert first.discrepancies == second.discrepancies == 0
    assert in_payout(payout.creator) == 0
    run = ReconciliationRun.objects.filter(kind="payouts").latest("id")
    assert run.status == "done"
    assert run.counts["transfers"] == 1
    assert run.finished_at
    call_command("verify_ledger")


def test_disagreements_become_discrepancies_not_guesses(connect_fake, admin_user):
    # A transfer nobody asked for, and one whose payout we cancelled (diamonds returned).
    stranger = connect_fake.add_transfer(
        amount=500, currency="usd", destination="acct_unknown", metadata={}
    )
    cancelled = stripe_payout(connect_fake)
    cancelled = payout_cancel(payout=cancelled, actor=admin_user, reason="test")
    behind_our_back = connect_fake.add_transfer(
        amount=2000,
        currency="usd",
        destination=cancelled.destination,
        metadata={"payout_id": str(cancelled.pk)},
    )

    outcome = payouts_reconcile()

    found = {(d.kind, d.object_type, d.object_id) for d in Discrepancy.objects.all()}
    assert ("transfer_without_payout", "transfer", stranger["id"]) in found
    assert ("transfer_for_returned_payout", "transfer", behind_our_back["id"]) in found
    assert outcome.discrepancies == 2
    cancelled.refresh_from_db()
    assert cancelled.status == PayoutStatus.CANCELLED  # unchanged: staff decide
    # Idempotent: a rerun finds the same rows, not new ones.
    assert payouts_reconcile().discrepancies == 0
    assert Discrepancy.objects.count() == 2


def test_amount_mismatch_and_paid_payout_missing_at_the_rail(connect_fake, admin_user):
    processing = stripe_payout(connect_fake)
    # A transfer for it exists at the rail with another amount.
    payout_send_less = connect_fake.add_transfer(
        amount=1,
        currency="usd",
        destination=processing.destination,
        metadata={"payout_id": str(processing.pk)},
        created=int(time.time()),
    )
    paid = stripe_payout(connect_fake)
    payout_send(payout_id=paid.pk)
    paid.refresh_from_db()
    connect_fake.transfers.pop(paid.rail_reference)  # the rail forgot it

    payouts_reconcile()

    kinds = {d.kind: (d.object_type, d.object_id) for d in Discrepancy.objects.all()}
    assert kinds["transfer_mismatch"] == ("transfer", payout_send_less["id"])
    assert kinds["payout_missing_at_rail"] == ("payout", str(paid.pk))
    processing.refresh_from_db()
    assert processing.status == PayoutStatus.REQUESTED  # a mismatch is never recorded paid


def test_reconcile_command_runs_both_sides_with_a_one_line_summary(connect_fake, capsys):
    stripe_payout(connect_fake)

    call_command("reconcile")

    out = capsys.readouterr().out.strip()
    assert out.startswith("reconcile: payments: ")
    assert "payouts: 0 transfers checked" in out
    assert "\n" not in out


@pytest.fixture
def finance_client():
    from accounts.roles import FINANCE
    from staff.tests.factories import staff_user, verified_client

    return verified_client(staff_user(FINANCE))


def test_reconcile_says_when_a_part_failed_and_exits_non_zero(capsys, finance_client):
    # No Connect stand-in here: the rail answers 404, as in the first `make run` report.
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="FAILED"):
        call_command("reconcile")
    out = capsys.readouterr().out.strip()
    assert out.startswith("reconcile: payments: ")
    assert "payouts: FAILED (" in out
    assert ReconciliationRun.objects.filter(kind="payouts", status="failed").exists()

    page = finance_client.get("/admin/").content.decode()
    assert 'data-testid="reconcile-failed"' in page
    assert "Last payouts reconciliation failed" in page


def test_a_good_run_after_a_failed_one_clears_the_dashboard_alert(connect_fake, finance_client):
    ReconciliationRun.objects.create(kind="payouts", status="failed", error="rail down")
    assert "Last payouts reconciliation failed" in finance_client.get("/admin/").content.decode()
    call_command("reconcile")  # succeeds: no exception
    assert "reconcile-failed" not in finance_client.get("/admin/").content.decode()
