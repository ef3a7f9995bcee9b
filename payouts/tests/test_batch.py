from decimal import Decimal

import pytest
from django.core.management import call_command
from djmoney.money import Money

from payouts.models import Payout, PayoutEvent, PayoutStatus, Rail, TaxFormStatus
from payouts.services import minimum_payout_diamonds, payout_batch_run
from payouts.tests.factories import available, in_payout, make_payout_creator
from wallets.models import LedgerTransaction

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["set-based", "one-by-one"])
def batch_path(request, monkeypatch):
    """Every batch test runs against both paths: the set-based chunks (PostgreSQL) and the
    per-creator reference path that SQLite (make run) uses."""
    import payouts.services.batch

    monkeypatch.setattr(
        payouts.services.batch, "bulk_supported", lambda: request.param == "set-based"
    )
    return request.param


def test_minimum_is_payout_minimum_over_diamond_value():
    assert minimum_payout_diamonds() == 2000  # USD 10 / USD 0.005


def test_batch_pays_exactly_the_due_creators_and_a_rerun_creates_none():
    above = make_payout_creator(5000)
    at = make_payout_creator(2000)
    below = make_payout_creator(1999)
    unverified = make_payout_creator(50_000, verified=False)
    no_method = make_payout_creator(50_000, with_method=False)

    result = payout_batch_run()

    payouts = {p.creator_id: p for p in Payout.objects.all()}
    assert set(payouts) == {above.pk, at.pk}
    assert payouts[above.pk].diamonds == 5000
    assert payouts[above.pk].amount == Money("25.00", "USD")
    assert payouts[at.pk].amount == Money("10.00", "USD")
    assert payouts[at.pk].status == PayoutStatus.REQUESTED
    assert (available(above), in_payout(above)) == (0, 5000)
    assert (available(below), available(unverified), available(no_method)) == (1999, 50_000, 50_000)
    assert result.batch.payouts_created == 2
    assert result.batch.diamonds == 7000
    assert (
        LedgerTransaction.objects.filter(idempotency_key__startswith="payout-created:").count() == 2
    )

    again = payout_batch_run()

    assert again.created == []
    assert Payout.objects.count() == 2
    assert in_payout(above) == 5000


def test_new_earnings_while_a_payout_is_open_wait_for_the_next_batch():
    creator = make_payout_creator(3000)
    payout_batch_run()
    from payouts.tests.factories import give_available_diamonds

    give_available_diamonds(creator.user, 4000)

    payout_batch_run()

    assert Payout.objects.filter(creator=creator).count() == 1
    assert available(creator) == 4000


def test_amount_is_rounded_down_to_the_cent(settings):
    settings.DIAMOND_VALUE = Decimal("0.0033")
    creator = make_payout_creator(3333)  # 10.9989 USD

    payout_batch_run()

    assert Payout.objects.get(creator=creator).amount == Money("10.99", "USD")


def test_payouts_above_the_approval_threshold_wait_for_staff(settings):
    settings.PAYOUT_APPROVAL_ABOVE = Decimal("100")
    big = make_payout_creator(20_002, tax_form_status=TaxFormStatus.W9)  # 100.01 USD
    exactly = make_payout_creator(20_000, tax_form_status=TaxFormStatus.W9)  # 100.00 USD

    result = payout_batch_run()

    assert Payout.objects.get(creator=big).status == PayoutStatus.AWAITING_APPROVAL
    assert "approval threshold" in Payout.objects.get(creator=big).hold_reason
    assert Payout.objects.get(creator=exactly).status == PayoutStatus.REQUESTED
    assert len(result.awaiting_approval) == 1
    # Held payouts still hold their diamonds: they cannot be paid twice by a later batch.
    assert in_payout(big) == 20_002


def test_missing_tax_form_over_the_yearly_threshold_holds_the_payout(settings):
    settings.PAYOUT_TAX_FORM_THRESHOLD = Decimal("50")
    no_form = make_payout_creator(20_000)  # 100 USD this year, no form
    with_form = make_payout_creator(20_000, tax_form_status=TaxFormStatus.W8BEN)

    payout_batch_run()

    assert Payout.objects.get(creator=no_form).status == PayoutStatus.AWAITING_APPROVAL
    assert "tax form" in Payout.objects.get(creator=no_form).hold_reason
    assert Payout.objects.get(creator=with_form).status == PayoutStatus.REQUESTED


def test_batch_records_the_creation_event_and_rail_snapshot():
    creator = make_payout_creator(4000, rail=Rail.STRIPE, stripe_account_id="acct_x1")

    payout_batch_run()

    payout = Payout.objects.get(creator=creator)
    assert payout.rail == Rail.STRIPE
    assert payout.destination == "acct_x1"
    event = PayoutEvent.objects.get(payout=payout)
    assert (event.from_status, event.to_status) == ("", PayoutStatus.REQUESTED)


def test_run_payouts_command_prints_a_one_line_summary(capsys):
    make_payout_creator(2500)

    call_command("run_payouts")

    out = capsys.readouterr().out.strip()
    assert out.startswith("run_payouts: batch #")
    assert "1 payouts created" in out
    assert "\n" not in out
    call_command("verify_ledger")
