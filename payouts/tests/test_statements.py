"""Payout statements: every diamond of a payout traced to the gift (or clawback) it came from."""

import csv
import io
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from creators.services import earnings_release
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund
from payouts.models import Payout, PayoutStatementLine, PayoutStatus
from payouts.services import payout_batch_run, payout_mark_failed, payout_mark_paid
from payouts.statements import payout_statement
from payouts.tests.factories import make_payout_creator
from tests.helpers import client_for, pdf_text
from wallets.models import AccountKind, TransactionKind
from wallets.services import Posting, account_get, ledger_post, platform_account

pytestmark = pytest.mark.django_db


def _send(sender, creator, gift, quantity=1, **context):
    return gift_send(
        sender=sender,
        creator_handle=creator.handle,
        gift_slug=gift.slug,
        quantity=quantity,
        client_key=str(uuid.uuid4()),
        **context,
    )


def _release(creator):
    # Everything credited until now has matured (the watermark becomes now, never later).
    hold = timedelta(days=django_settings.EARNINGS_HOLD_DAYS)
    earnings_release(creator=creator, now=timezone.now() + hold)


def _clawback(creator, diamonds: int):
    """What wallets' chargeback policy posts: pending −D back to diamond issuance."""
    with transaction.atomic():
        ledger_post(
            kind=TransactionKind.CLAWBACK,
            idempotency_key=f"chargeback:test-{uuid.uuid4()}:{creator.pk}",
            postings=[
                Posting(
                    account_get(kind=AccountKind.DIAMONDS_PENDING, user=creator.user), -diamonds
                ),
                Posting(platform_account(AccountKind.DIAMOND_ISSUANCE), diamonds),
            ],
            memo="Chargeback on recharge #1 by someone: coins charged back.",
        )


@pytest.fixture
def gifts():
    return (
        GiftFactory(slug="rose", name="Rose", coins=100),
        GiftFactory(slug="lion", name="Lion", coins=1000),
    )


def test_statement_lists_each_gift_by_day_and_live_and_sums_to_the_payout(gifts, admin_user):
    rose, lion = gifts
    creator = make_payout_creator()
    alice = fund(UserFactory(username="alice"), 10_000)
    bob = fund(UserFactory(username="bob"), 10_000)
    g1 = _send(alice, creator, lion, live_id="live-1")
    g2 = _send(bob, creator, rose, quantity=5, live_id="live-1")
    g3 = _send(alice, creator, lion, video_id="vid-9")
    _release(creator)

    payout_batch_run()

    payout = Payout.objects.get(creator=creator)
    assert payout.diamonds == 2500
    assert payout.diamond_value is not None
    statement = payout_statement(payout=payout)
    assert statement.diamonds == payout.diamonds == 2500
    assert [(g.context, g.context_id, g.diamonds) for g in statement.groups] == [
        ("live", "live-1", 1500),
        ("video", "vid-9", 1000),
    ]
    rows = {row.transaction_id: row for row in statement.lines}
    assert set(rows) == {g1.transaction_id, g2.transaction_id, g3.transaction_id}
    assert (rows[g2.transaction_id].sender, rows[g2.transaction_id].quantity) == ("bob", 5)
    assert rows[g2.transaction_id].diamonds_per_coin == "1"
    assert statement.fees.amount == 0
    assert str(statement.amount.amount) == "12.50"
    assert "no currency conversion" in statement.conversion_note

    # The creator follows Bob's gift from his debit to this payout, over the API.
    api = client_for(creator.user)
    trace = api.get(f"/api/v1/payouts/trace/{g2.transaction_id}/").json()
    assert trace["coins_debited"] == 500
    assert trace["sender"] == "bob"
    assert trace["released_by_transaction_id"] is not None
    assert trace["paid_by_payout_id"] == payout.pk
    assert trace["status"] == "requested"
    body = api.get(f"/api/v1/payouts/{payout.pk}/statement/").json()
    assert body["diamonds"] == 2500
    assert body["fees"] == {"amount": "0.00", "currency": "USD"}
    assert sum(line["diamonds"] for g in body["groups"] for line in g["lines"]) == 2500

    payout_mark_paid(payout=payout, actor=admin_user, reference="bank-run-1")
    assert api.get(f"/api/v1/payouts/trace/{g2.transaction_id}/").json()["status"] == "paid"
    # Nobody else can trace it or read the statement.
    other = client_for(make_payout_creator().user)
    assert other.get(f"/api/v1/payouts/trace/{g2.transaction_id}/").status_code == 404
    assert other.get(f"/api/v1/payouts/{payout.pk}/statement/").status_code == 404
    call_command("verify_ledger")


def test_clawback_is_a_negative_line_and_a_failed_payout_is_paid_again(gifts, admin_user):
    _rose, lion = gifts
    creator = make_payout_creator()
    fan = fund(UserFactory(), 20_000)
    first = [_send(fan, creator, lion) for _ in range(3)]
    _release(creator)
    payout_batch_run()
    p1 = Payout.objects.get(creator=creator)
    payout_mark_paid(payout=p1, actor=admin_user)

    later = [_send(fan, creator, lion) for _ in range(3)]
    _clawback(creator, 700)  # a chargeback while these diamonds were still on hold
    _release(creator)
    payout_batch_run()
    p2 = Payout.objects.get(creator=creator, status=PayoutStatus.REQUESTED)
    assert p2.diamonds == 2300

    s2 = payout_statement(payout=p2)
    assert [r.diamonds for r in s2.lines] == [1000, 1000, 1000, -700]
    assert s2.lines[-1].kind == "chargeback"
    assert "Chargeback" in s2.lines[-1].memo
    assert s2.chargeback_diamonds == -700
    assert s2.diamonds == 2300
    assert {r.transaction_id for r in payout_statement(payout=p1).lines} == {
        g.transaction_id for g in first
    }

    # The bank returns p2: its diamonds go back and the next payout pays the same gifts.
    payout_mark_failed(payout=p2, actor=admin_user, reason="bank returned it")
    payout_batch_run()
    p3 = Payout.objects.get(creator=creator, status=PayoutStatus.REQUESTED)
    s3 = payout_statement(payout=p3)
    assert [r.transaction_id for r in s3.lines][:3] == [g.transaction_id for g in later]
    assert s3.diamonds == p3.diamonds == 2300
    assert payout_statement(payout=p2).paid_again_by == [p3.pk]
    api = client_for(creator.user)
    trace = api.get(f"/api/v1/payouts/trace/{later[0].transaction_id}/").json()
    assert trace["paid_by_payout_id"] == p3.pk
    assert [p["payout_id"] for p in trace["payouts"]] == [p2.pk, p3.pk]
    call_command("verify_ledger")


def test_a_gift_split_between_two_payouts_shows_partial_lines(gifts, settings, admin_user):
    _rose, lion = gifts
    creator = make_payout_creator()
    fan = fund(UserFactory(), 20_000)
    g1 = _send(fan, creator, lion, quantity=2)  # 2000 diamonds
    g2 = _send(fan, creator, lion)  # 1000 diamonds
    _clawback(creator, 500)  # pending now 2500
    # Only g1 has matured: 2000 diamonds released.
    cutoff = g2.transaction.created_at
    earnings_release(creator=creator, now=cutoff + timedelta(days=settings.EARNINGS_HOLD_DAYS))
    payout_batch_run()
    p1 = Payout.objects.get(creator=creator)
    assert p1.diamonds == 2000

    lines = list(PayoutStatementLine.objects.filter(payout=p1).order_by("position"))
    assert [(line.kind, line.diamonds, line.entry_diamonds) for line in lines] == [
        ("gift", 2000, 2000),
        ("gift", 500, 1000),
        ("chargeback", -500, -500),
    ]
    assert [line.transaction_id for line in lines[:2]] == [g1.transaction_id, g2.transaction_id]
    assert payout_statement(payout=p1).lines[1].is_partial

    payout_mark_paid(payout=p1, actor=admin_user)
    g3 = _send(fan, creator, lion, quantity=2)
    _release(creator)
    payout_batch_run()
    p2 = Payout.objects.get(creator=creator, status=PayoutStatus.REQUESTED)
    assert [(r.transaction_id, r.diamonds) for r in payout_statement(payout=p2).lines] == [
        (g2.transaction_id, 500),
        (g3.transaction_id, 2000),
    ]
    call_command("verify_ledger")


def test_csv_and_pdf_downloads_carry_every_line_and_the_totals(gifts):
    rose, lion = gifts
    creator = make_payout_creator()
    fan = fund(UserFactory(username="fan1"), 10_000)
    sent = [_send(fan, creator, lion, live_id="L1") for _ in range(2)]
    sent.append(_send(fan, creator, rose, quantity=3, message="=HYPERLINK(1)", live_id="L1"))
    _release(creator)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    portal = Client()
    portal.force_login(creator.user, backend="django.contrib.auth.backends.ModelBackend")

    page = portal.get(f"/creator/payouts/{payout.pk}/statement/")
    csv_response = portal.get(f"/creator/payouts/{payout.pk}/statement.csv")
    pdf_response = portal.get(f"/creator/payouts/{payout.pk}/statement.pdf")

    assert page.status_code == 200
    assert b"Statement for payout" in page.content
    assert csv_response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_response.content.decode())))
    gift_rows = [r for r in rows if r["kind"] == "gift"]
    assert [int(r["ledger_transaction_id"]) for r in gift_rows] == [g.transaction_id for g in sent]
    assert sum(int(r["diamonds"]) for r in gift_rows) == 2300
    totals = {r["kind"]: r for r in rows if r["line"] == ""}
    assert totals["total"]["diamonds"] == "2300"
    assert totals["fees"]["value"] == "0.00"
    assert totals["amount_paid"]["value"] == "11.50"
    assert gift_rows[-1]["memo"].startswith("'=")  # no spreadsheet formulas from viewers
    body = pdf_response.content
    assert pdf_response["Content-Type"] == "application/pdf"
    assert body.startswith(b"%PDF-")
    assert body.rstrip().endswith(b"%%EOF")
    text = pdf_text(body)
    assert "Total 2,300 diamonds 11.5000" in text
    assert "Fees 0.00" in text
    assert "Amount paid 11.50 USD" in text
    assert all(str(g.transaction_id) in text for g in sent)
    # Another creator's statement is 404, not 403.
    intruder = Client()
    intruder.force_login(
        make_payout_creator().user, backend="django.contrib.auth.backends.ModelBackend"
    )
    assert intruder.get(f"/creator/payouts/{payout.pk}/statement.pdf").status_code == 404
    call_command("verify_ledger")


def test_verify_ledger_catches_a_statement_that_does_not_add_up(gifts):
    _rose, lion = gifts
    creator = make_payout_creator()
    fan = fund(UserFactory(), 10_000)
    for _ in range(3):
        _send(fan, creator, lion)
    _release(creator)
    payout_batch_run()
    PayoutStatementLine.objects.filter(payout__creator=creator, position=3).delete()
    with pytest.raises(CommandError):
        call_command("verify_ledger")


def test_money_is_shown_one_way_on_the_page_and_agrees_with_the_csv():
    # 2,301 diamonds x USD 0.005 = 11.505: paid 11.50, rounded down by half a cent.
    creator = make_payout_creator(2301)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    portal = Client()
    portal.force_login(creator.user, backend="django.contrib.auth.backends.ModelBackend")

    page = portal.get(f"/creator/payouts/{payout.pk}/statement/").content.decode()
    rows = csv.DictReader(
        io.StringIO(portal.get(f"/creator/payouts/{payout.pk}/statement.csv").content.decode())
    )
    totals = {r["kind"]: r["value"] for r in rows if r["line"] == ""}

    assert "data-value>$11.5050<" in page
    assert "data-rounding>−$0.0050<" in page
    assert totals["rounding"] == "-0.0050"
    assert "<strong>$11.50</strong>" in page
    assert totals["amount_paid"] == "11.50"
    assert "−$0.00<" not in page
    assert "USD 11.5050" not in page
