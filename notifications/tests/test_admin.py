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


def test_a_pending_password_reset_mail_never_shows_its_link_to_staff(user):
    """A reset link in staff's hands is a way into the account: its body is not shown."""
    secret = "https://applause.example/reset/MQ/secret-token/"
    OutboxEmail.objects.create(
        event="password_reset:req",
        user=user,
        to_email="owner@example.com",
        category="security",
        template="password_reset",
        subject="Reset your Applause password",
        body_text=f"Set a new one here: {secret}",
        body_html=f'<a href="{secret}">Set a new password</a>',
        status="pending",
    )
    admin = verified_client(staff_user(None, is_superuser=True))
    row = OutboxEmail.objects.get()
    detail = admin.get(f"/admin/notifications/outboxemail/{row.pk}/change/")
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "Reset your Applause password" in page
    assert "secret-token" not in page
