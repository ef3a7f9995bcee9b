"""Membership mails go through the email outbox: a receipt for joining and renewing, the
grace and lapse notices, a gifted month, a cancellation; each mail once, however often the
notice sweep runs, and they reach a real SMTP server."""

from datetime import timedelta

import pytest

from accounts.tests.factories import UserFactory
from gifts.tests.factories import fund, make_creator
from memberships.models import EventKind, MembershipEvent
from memberships.selectors import notices_of
from memberships.services import (
    membership_cancel,
    membership_gift,
    membership_notices_send,
    membership_notices_send_all,
    memberships_renew,
)
from memberships.tests.factories import join, make_tier
from notifications.models import EmailStatus, OutboxEmail
from notifications.services import email_outbox_flush
from notifications.tests.conftest import smtp  # noqa: F401 - the real SMTP server fixture
from notifications.tests.test_messages import verify

pytestmark = pytest.mark.django_db


def mails(user) -> list[OutboxEmail]:
    return list(OutboxEmail.objects.filter(user=user, template="membership").order_by("id"))


def test_join_renew_grace_lapse_each_mailed_once_and_delivered(smtp):  # noqa: F811
    creator = make_creator("mailme")
    tier = make_tier(creator, name="Gold", coins=100)
    viewer = fund(UserFactory(email="member@example.com"), 250)
    verify(viewer)
    membership = join(viewer, creator, tier).membership
    renew_at = membership.current_period_end + timedelta(minutes=1)
    assert memberships_renew(now=renew_at).renewed == 1  # 50 coins left: the next one fails
    grace_at = membership.current_period_end + timedelta(days=31, minutes=2)
    assert memberships_renew(now=grace_at).grace == 1
    lapse_at = grace_at + timedelta(days=4)
    assert memberships_renew(now=lapse_at).lapsed == 1

    assert membership_notices_send_all() == 4
    assert membership_notices_send_all() == 0  # a rerun finds nothing left to do
    assert not MembershipEvent.objects.filter(notify=True, notified_at__isnull=True).exists()
    subjects = [m.subject for m in mails(viewer)]
    assert subjects == [
        "Welcome to Gold of @mailme",
        "Your Gold membership of @mailme renewed",
        "Your Gold membership of @mailme could not renew",
        "Your membership of @mailme has ended",
    ]
    receipt = mails(viewer)[1]
    assert "100 coins for the month" in receipt.body_text
    assert "/wallet/memberships/" in receipt.body_text
    assert receipt.body_html
    assert "Top up before" in mails(viewer)[2].body_text

    assert email_outbox_flush()["sent"] == 4
    arrived = smtp.to("member@example.com")
    assert sorted(m["Subject"] for m in arrived) == sorted(subjects)
    assert all(m.get_body(("html",)) is not None for m in arrived)
    # The portal's notices are the warnings, not the receipts.
    assert {e.kind for e in notices_of(user=viewer)} == {EventKind.GRACE, EventKind.LAPSED}


def test_a_second_sweep_after_a_lost_mark_writes_no_second_mail():
    """Even if a notice were found unmarked again (a crash between the outbox rows and the
    mark is impossible: one transaction), the outbox's (event, person) key keeps it one mail."""
    creator = make_creator("twice")
    tier = make_tier(creator)
    viewer = fund(UserFactory(), 500)
    verify(viewer)
    join(viewer, creator, tier)
    assert membership_notices_send() == 1
    MembershipEvent.objects.update(notified_at=None)
    assert membership_notices_send() == 1
    assert len(mails(viewer)) == 1


def test_gift_recipients_and_a_cancel_are_told_unverified_addresses_are_not_mailed():
    creator = make_creator("giving")
    tier = make_tier(creator, name="Silver", coins=50)
    payer = fund(UserFactory(username="santa"), 500)
    ana, ben = UserFactory(username="ana"), UserFactory(username="ben")
    verify(ana)
    membership_gift(
        payer=payer,
        creator_handle=creator.handle,
        tier_id=tier.pk,
        recipients=["ana", "ben"],
        client_key="gift-1",
    )
    membership_notices_send_all()
    (to_ana,) = mails(ana)
    assert to_ana.subject == "santa gifted you a month of Silver (@giving)"
    assert to_ana.status == EmailStatus.PENDING
    (to_ben,) = mails(ben)
    assert to_ben.status == EmailStatus.SKIPPED  # ben never verified his address

    membership = ana.memberships.get()
    membership_cancel(member=ana, membership_id=membership.pk)
    membership_notices_send_all()
    assert mails(ana)[-1].subject == "Your Silver membership of @giving is cancelled"
    assert "perks run to" in mails(ana)[-1].body_text
