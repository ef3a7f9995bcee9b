"""Each event writes its message into the outbox in the event's own transaction."""

import pytest
from django.utils import timezone

from notifications.models import EmailCategory, EmailPreference, EmailStatus, OutboxEmail
from payouts.models import PayoutStatus
from payouts.services import payout_batch_run, payout_mark_failed, payout_mark_paid, payout_send
from payouts.tests.factories import make_payout_creator
from wallets.tests.factories import event_payload, post_event
from wallets.tests.test_viewer_protections import _chargeback_setup, _dispute

pytestmark = pytest.mark.django_db


def verify(user):
    EmailPreference.objects.update_or_create(
        user=user, defaults={"verified_email": user.email, "verified_at": timezone.now()}
    )


def only(template, user) -> OutboxEmail:
    (row,) = OutboxEmail.objects.filter(template=template, user=user)
    return row


def test_receipt_refund_notice_and_creator_cost_of_a_chargeback(api, settings):
    settings.CHARGEBACK_POLICY = "clawback_pending"
    creator, viewer, recharge = _chargeback_setup()
    receipt = only("recharge_receipt", viewer)
    assert receipt.event == f"recharge_receipt:{recharge.pk}"
    assert receipt.status == EmailStatus.SKIPPED  # the viewer never verified the address
    assert "1,000 coins" in receipt.subject
    assert recharge.payment_intent in receipt.body_text
    verify(viewer)
    verify(creator.user)

    opened = event_payload("charge.dispute.created", _dispute(recharge, "dp_mail"))
    assert post_event(api, opened).status_code == 200
    assert post_event(api, opened).status_code == 200  # redelivered: still one message each

    viewer_notice = only("recharge_refunded", viewer)
    assert viewer_notice.status == EmailStatus.PENDING
    assert "chargeback" in viewer_notice.subject.lower()
    assert "Coins you had already spent: 600" in viewer_notice.body_text
    creator_notice = only("chargeback_creator", creator.user)
    assert creator_notice.subject == "A chargeback on gifts you received cost you 300 diamonds"
    assert "USD 1.50" in creator_notice.body_text  # 300 × 0.005


def test_payout_messages_sent_paid_failed_and_held(settings):
    settings.PAYOUT_APPROVAL_ABOVE = 100
    small = make_payout_creator(4000)
    big = make_payout_creator(40_000)
    failing = make_payout_creator(3000)
    for creator in (small, big, failing):
        verify(creator.user)
    payout_batch_run()
    held = only("payout", big.user)
    assert held.event.startswith("payout_awaiting_approval:")
    assert "is on hold" in held.subject
    assert "Why: " in held.body_text
    assert "Until: " in held.body_text

    small_payout = small.payouts.get()
    payout_send(payout_id=small_payout.pk)
    payout_mark_paid(payout=small_payout, actor=None, reference="bank-run-1")
    sent, paid = OutboxEmail.objects.filter(user=small.user).order_by("id")
    assert "on its way" in sent.subject
    assert "ending 3000" in sent.body_text
    assert sent.subject.endswith("of USD 20.00 is on its way")
    assert "was paid" in paid.subject

    failed_payout = failing.payouts.get()
    payout_send(payout_id=failed_payout.pk)
    payout_mark_failed(payout=failed_payout, actor=None, reason="IBAN closed")
    failed = OutboxEmail.objects.filter(user=failing.user).order_by("id").last()
    assert failed_payout.pk
    assert failed.event == f"payout_{PayoutStatus.FAILED}:{failed_payout.pk}"
    assert "failed" in failed.subject
    assert "What to do: " in failed.body_text
    assert failed.category == EmailCategory.ACCOUNT


def test_weekly_digest_once_per_week_and_not_after_unsubscribing():
    from datetime import timedelta

    from accounts.tests.factories import UserFactory
    from gifts.tests.factories import fund, make_creator
    from payouts.digest import weekly_digest_enqueue
    from wallets.tests.test_viewer_protections import gift

    creator = make_creator("digested")
    verify(creator.user)
    fan = fund(UserFactory(username="bigfan"), 1000)
    gift(fan, creator, coins_each=300)
    gift(fan, creator, coins_each=100, quantity=2)
    next_week = timezone.now() + timedelta(days=7)

    assert weekly_digest_enqueue(now=next_week) == 1
    assert weekly_digest_enqueue(now=next_week) == 1  # a rerun: still one message
    row = only("weekly_digest", creator.user)
    assert row.status == EmailStatus.PENDING
    assert row.category == EmailCategory.DIGEST
    assert "Gifts received:     2" in row.body_text
    assert "1. bigfan: 500 coins" in row.body_text
    assert row.headers["List-Unsubscribe"].startswith("<http")
    assert weekly_digest_enqueue(now=timezone.now()) == 0  # nothing the week before

    EmailPreference.objects.filter(user=creator.user).update(weekly_digest=False)
    weekly_digest_enqueue(now=next_week + timedelta(days=7))  # no gifts that week either
    assert OutboxEmail.objects.filter(template="weekly_digest").count() == 1
