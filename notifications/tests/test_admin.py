"""Staff see the outbox and webhook deliveries read-only (failed mails "visible in the admin")."""

import pytest

from notifications.models import OutboxEmail
from staff.tests.factories import staff_user, verified_client

pytestmark = pytest.mark.django_db


def test_failed_mail_is_visible_to_staff_and_nothing_can_be_edited(user):
    OutboxEmail.objects.create(
        event="recharge_receipt:1",
        user=user,
        to_email="someone@example.com",
        category="account",
        template="x",
        subject="Your receipt",
        body_text="hi",
        status="failed",
        last_error="550 mailbox unavailable",
    )
    admin = verified_client(staff_user(None, is_superuser=True))
    listing = admin.get("/admin/notifications/outboxemail/?status__exact=failed")
    assert listing.status_code == 200
    assert "someone@example.com" in listing.content.decode()
    row = OutboxEmail.objects.get()
    detail = admin.get(f"/admin/notifications/outboxemail/{row.pk}/change/").content.decode()
    assert "550 mailbox unavailable" in detail
    assert admin.post(f"/admin/notifications/outboxemail/{row.pk}/delete/").status_code == 403
    assert OutboxEmail.objects.filter(pk=row.pk).exists()
