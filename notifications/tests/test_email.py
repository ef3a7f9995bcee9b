"""The outbox against a real SMTP server on loopback: sent once, retried, never doubled."""

import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from accounts.tests.factories import UserFactory
from notifications.email_url import email_url_settings
from notifications.models import EmailCategory, EmailPreference, EmailStatus, OutboxEmail
from notifications.services import (
    email_enqueue,
    email_outbox_flush,
    email_send,
    email_verification_send,
)
from notifications.tests.factories import verified_user
from tests.helpers import free_port

pytestmark = pytest.mark.django_db


def _receipt(user, event="recharge_receipt:1", **extra):
    return email_enqueue(
        event=event,
        user=user,
        template="recharge_receipt",
        context={
            "recharge_id": 1,
            "coins": "1,000",
            "price": "US$9.99",
            "paid_at": timezone.now(),
            "payment_intent": "pi_123",
            "receipt_url": "http://testserver/recharges/1/receipt/",
        },
        **extra,
    )


def test_enqueued_in_a_transaction_is_sent_after_commit_over_smtp(
    smtp, eager_celery, django_capture_on_commit_callbacks
):
    user = verified_user()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        row = _receipt(user)
        assert smtp.messages == []  # nothing leaves before the commit

    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == user.email
    assert message["Subject"] == "Your Applause receipt: 1,000 coins for US$9.99"
    assert message["Message-ID"] == row.message_id
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "pi_123" in text
    assert "pi_123" in html
    assert "<table" in html
    assert "<table" not in text
    row.refresh_from_db()
    assert row.status == EmailStatus.SENT
    assert row.attempts == 1
    assert row.sent_at


def test_same_event_and_person_is_one_message(
    smtp, eager_celery, django_capture_on_commit_callbacks
):
    user = verified_user()
    with django_capture_on_commit_callbacks(execute=True):
        first = _receipt(user)
        second = _receipt(user)
    assert first.pk == second.pk
    assert OutboxEmail.objects.filter(event="recharge_receipt:1").count() == 1
    email_send(email_id=first.pk)  # a retried task, a rerun
    email_outbox_flush()
    assert len(smtp.to(user.email)) == 1


def test_smtp_refusal_is_retried_with_backoff_then_sent_once(smtp):
    user = verified_user()
    row = _receipt(user)
    smtp.refuse = True
    row = email_send(email_id=row.pk)
    assert row.status == EmailStatus.PENDING
    assert row.attempts == 1
    assert "451" in row.last_error
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=50)
    assert email_outbox_flush()["sent"] == 0  # not due yet

    smtp.refuse = False
    OutboxEmail.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert email_outbox_flush()["sent"] == 1
    assert email_outbox_flush()["sent"] == 0
    assert len(smtp.to(user.email)) == 1


def test_a_server_that_is_down_counts_attempts_and_gives_up(settings, smtp):
    settings.EMAIL_MAX_ATTEMPTS = 2
    settings.EMAIL_PORT = free_port()  # nothing listens there
    user = verified_user()
    row = _receipt(user)
    assert email_send(email_id=row.pk).status == EmailStatus.PENDING
    row = email_send(email_id=row.pk)
    assert row.status == EmailStatus.FAILED
    assert row.attempts == 2
    assert "Connection refused" in row.last_error
    assert email_outbox_flush() == {"sent": 0, "retry": 0, "failed": 0, "busy": 0}


def test_unverified_address_gets_security_mail_only(smtp):
    user = UserFactory()
    receipt = _receipt(user)
    assert receipt.status == EmailStatus.SKIPPED
    assert receipt.last_error == "address not verified"
    security = email_verification_send(user=user)
    assert security.status == EmailStatus.PENDING
    email_outbox_flush()
    (message,) = smtp.to(user.email)
    assert "Confirm your email" in message["Subject"]


@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_send_one_message(smtp):
    user = verified_user()
    row = _receipt(user)
    entered = threading.Event()
    release = threading.Event()
    original = smtp.handle_DATA

    async def slow(server, session, envelope):
        entered.set()
        release.wait(10)
        return await original(server, session, envelope)

    smtp.handle_DATA = slow
    results = []

    def send():
        try:
            results.append(email_send(email_id=row.pk))
        finally:
            connection.close()

    first = threading.Thread(target=send)
    first.start()
    assert entered.wait(10)
    # The first sender holds the row mid-SMTP: the second skips it instead of sending again.
    send()
    release.set()
    first.join(10)
    assert results[0] is None
    assert results[1].status == EmailStatus.SENT
    assert email_outbox_flush()["sent"] == 0
    assert len(smtp.to(user.email)) == 1


def test_verification_link_verifies_and_then_account_mail_flows(client, smtp):
    user = UserFactory()
    email_verification_send(user=user)
    email_outbox_flush()
    (message,) = smtp.to(user.email)
    link = re.search(r"http://\S+/email/verify/\S+/", message.get_body(("plain",)).get_content())
    path = link.group(0).split("8000", 1)[-1]
    assert client.get(path.replace("/verify/", "/verify/x")).status_code == 400
    response = client.get(path)
    assert response.status_code == 200
    assert b"is confirmed" in response.content
    assert EmailPreference.objects.get(user=user).is_verified_for(user.email)
    assert _receipt(user).status == EmailStatus.PENDING

    user.email = "new-address@example.com"
    user.save()
    assert _receipt(user, event="recharge_receipt:2").status == EmailStatus.SKIPPED
    assert client.get(path).status_code == 400  # the link was for the old address


def test_digest_carries_list_unsubscribe_and_one_click_works(client, smtp):
    user = verified_user()
    email_enqueue(
        event="digest:2026-W01",
        user=user,
        template="weekly_digest",
        category=EmailCategory.DIGEST,
        context={
            "week": "2026-W01",
            "diamonds": "1,200",
            "value": "USD 6.00",
            "gifts": 3,
            "available": "5,000",
            "top_supporters": [],
            "dashboard_url": "http://x/creator/",
        },
    )
    email_outbox_flush()
    (message,) = smtp.to(user.email)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip().strip("<>")
    assert link in message.get_body(("plain",)).get_content()
    path = link.split("8000", 1)[-1]
    assert client.get(path).status_code == 200
    response = client.post(path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert EmailPreference.objects.get(user=user).weekly_digest is False
    later = email_enqueue(
        event="digest:2026-W02",
        user=user,
        template="weekly_digest",
        category=EmailCategory.DIGEST,
        context={"week": "2026-W02", "top_supporters": []},
    )
    assert later.status == EmailStatus.SKIPPED
    assert later.last_error == "unsubscribed"


def test_preferences_page_toggles_the_digest(client):
    user = verified_user()
    client.force_login(user)
    page = client.get("/account/notifications/")
    assert page.status_code == 200
    assert b"is confirmed" in page.content
    client.post("/account/notifications/", {})
    assert EmailPreference.objects.get(user=user).weekly_digest is False
    client.post("/account/notifications/", {"weekly_digest": "1"})
    assert EmailPreference.objects.get(user=user).weekly_digest is True


def test_eml_backend_writes_one_file_per_message(settings, tmp_path):
    settings.EMAIL_BACKEND = "notifications.backends.EmlFileBackend"
    settings.MAIL_DIR = tmp_path
    user = verified_user()
    row = _receipt(user)
    assert email_send(email_id=row.pk).status == EmailStatus.SENT
    (path,) = tmp_path.glob("*.eml")
    assert b"Subject: Your Applause receipt" in path.read_bytes()
    assert mail.outbox == []


def test_email_url_parsing(tmp_path):
    smtp = email_url_settings("smtp://ann:p%40ss@mail.example.com:587/?tls=1", mail_dir=tmp_path)
    assert smtp["EMAIL_HOST"] == "mail.example.com"
    assert smtp["EMAIL_PORT"] == 587
    assert smtp["EMAIL_HOST_USER"] == "ann"
    assert smtp["EMAIL_HOST_PASSWORD"] == "p@ss"
    assert smtp["EMAIL_USE_TLS"] is True
    assert smtp["EMAIL_USE_SSL"] is False
    ssl = email_url_settings("smtps://mail.example.com", mail_dir=tmp_path)
    assert ssl["EMAIL_PORT"] == 465
    assert ssl["EMAIL_USE_SSL"]
    assert not ssl["EMAIL_USE_TLS"]
    files = email_url_settings("file:///srv/mail", mail_dir=tmp_path)
    assert files["EMAIL_BACKEND"].endswith("EmlFileBackend")
    assert str(files["MAIL_DIR"]) == "/srv/mail"
    with pytest.raises(ValueError, match="unknown scheme"):
        email_url_settings("ftp://x", mail_dir=tmp_path)
