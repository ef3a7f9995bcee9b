"""The statement PDF: a document for an accountant, in any script, over as many pages as it takes."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from creators.services import earnings_release
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund
from payouts.models import Payout
from payouts.services import payout_batch_run
from payouts.statements import payout_statement, statement_pdf
from payouts.tests.factories import make_payout_creator
from tests.helpers import pdf_pages, pdf_text
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
    hold = timedelta(days=django_settings.EARNINGS_HOLD_DAYS)
    earnings_release(creator=creator, now=timezone.now() + hold)


def _creator(name: str):
    creator = make_payout_creator()
    creator.display_name = name
    creator.save(update_fields=["display_name"])
    return creator


def test_a_long_statement_in_three_scripts_keeps_every_name_line_and_total():
    rose = GiftFactory(slug="rose", name="Rose", coins=100)
    lion = GiftFactory(slug="lion", name="Lion", coins=1000)
    creator = _creator("李雷")
    lukasz = fund(UserFactory(username="Łukasz"), 1_000_000)
    nandu = fund(UserFactory(username="Ñandú"), 1_000_000)
    sent = []
    for i in range(70):
        sent.append(_send(lukasz, creator, rose, live_id="live-7"))
        sent.append(_send(nandu, creator, lion if i % 7 == 0 else rose, video_id="vid-9"))
    _release(creator)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    statement = payout_statement(payout=payout)
    portal = Client()
    portal.force_login(creator.user, backend="django.contrib.auth.backends.ModelBackend")

    response = portal.get(f"/creator/payouts/{payout.pk}/statement.pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    pages = pdf_pages(response.content)
    text = "\n".join(pages)
    assert len(pages) >= 3
    # Every page: the running head (after the first) names the creator; all are numbered.
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
        if number > 1:
            assert f"#{payout.pk} · 李雷 (@{creator.handle})" in page
    # A table spanning pages repeats its headings on each of them.
    assert sum("Ledger tx" in page for page in pages) == len(pages) - (
        0 if "Ledger tx" in pages[0] else 1
    )
    assert "李雷" in pages[0]
    assert f"@{creator.handle}" in pages[0]
    assert text.count("Łukasz") == 70
    assert text.count("Ñandú") == 70
    assert "Live live-7" in text
    assert "Video vid-9" in text
    for gift in sent:
        assert str(gift.transaction_id) in text
    # Totals: each table's subtotal, the summary and the amount paid.
    live, video = (g for g in statement.groups)
    assert live.diamonds == 7_000
    assert video.diamonds == 6_000 + 10 * 1_000 - 0
    assert f"Subtotal, 70 gift(s) {live.diamonds:,}" in text
    assert f"Subtotal, 70 gift(s) {video.diamonds:,}" in text
    total = statement.diamonds
    assert total == payout.diamonds == 23_000
    assert f"Total {total:,} diamonds" in text
    assert f"Amount paid {statement.amount.amount} USD" in text
    assert f"Total: {total:,} diamonds · amount paid {statement.amount.amount} USD" in text
    # The currency paragraph is wrapped text, whole; no line needs a footnote, so none.
    assert "your bank converts at its own rate." in " ".join(text.split())
    assert "*" not in text
    assert "†" not in text


def test_a_split_gift_gets_a_footnote_and_a_chargeback_its_line():
    lion = GiftFactory(slug="lion", name="Lion", coins=1000)
    creator = _creator("Ñandú Łódź")
    fan = fund(UserFactory(), 20_000)
    _send(fan, creator, lion, quantity=2)  # 2000 diamonds
    g2 = _send(fan, creator, lion)  # 1000 diamonds
    with transaction.atomic():  # a chargeback while they are on hold: pending -500
        ledger_post(
            kind=TransactionKind.CLAWBACK,
            idempotency_key=f"chargeback:test-{uuid.uuid4()}:{creator.pk}",
            postings=[
                Posting(account_get(kind=AccountKind.DIAMONDS_PENDING, user=creator.user), -500),
                Posting(platform_account(AccountKind.DIAMOND_ISSUANCE), 500),
            ],
            memo="Chargeback on recharge #1 by someone: coins charged back to the card.",
        )
    hold = timedelta(days=django_settings.EARNINGS_HOLD_DAYS)
    earnings_release(creator=creator, now=g2.transaction.created_at + hold)  # g1 matured
    payout_batch_run()
    statement = payout_statement(payout=Payout.objects.get(creator=creator))
    assert [row.is_partial for row in statement.lines] == [False, True, False]

    text = " ".join(pdf_text(statement_pdf(statement)).split())

    assert "Ñandú Łódź" in text
    assert "500 of 1,000*" in text
    assert "* Only part of this line's diamonds is paid by this payout" in text
    assert "coins charged back to the card." in text  # the memo, wrapped, not cut
    assert "Total 2,000 diamonds" in text
    assert "Chargebacks -500 diamonds" in text


def test_past_the_line_limit_the_pdf_lists_subtotals_and_points_to_the_csv(monkeypatch):
    lion = GiftFactory(slug="lion", name="Lion", coins=1000)
    creator = _creator("Łukasz")
    fan = fund(UserFactory(username="Ñandú"), 10_000)
    sent = [_send(fan, creator, lion, live_id="L1") for _ in range(3)]
    _release(creator)
    payout_batch_run()
    statement = payout_statement(payout=Payout.objects.get(creator=creator))
    monkeypatch.setattr("payouts.pdf.DETAIL_LINES_MAX", 2)

    text = " ".join(pdf_text(statement_pdf(statement)).split())

    assert "This statement has 3 lines" in text
    assert "the CSV download" in text
    assert "Live L1 3 3,000 15.0000" in text
    assert "Total 3,000 diamonds" in text
    assert "Ledger tx" not in text
    assert "Gift / note" not in text
    assert len(sent) == 3
    assert "Łukasz" in text
