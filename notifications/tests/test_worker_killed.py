"""A worker process SIGKILLed in the middle of a delivery: the webhook and the mail are still
delivered (at least once, never lost), and a repeat carries the same event id / Message-ID so
receivers drop it. Real processes against this test's PostgreSQL, a real HTTP receiver and a
real SMTP server on loopback (``transaction=True``: the worker sees committed rows)."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.db import connection, transaction

from notifications.models import DeliveryStatus, EmailStatus, OutboxEmail, WebhookDelivery
from notifications.services import email_enqueue, email_outbox_flush
from notifications.tests.conftest import free_port
from notifications.tests.factories import verified_user
from notifications.tests.test_webhooks import Receiver, subscribe
from notifications.webhooks import webhook_event_emit, webhook_flush_all

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _env(**extra) -> dict:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "x" * 50,
        APPLAUSE_TESTING="1",
        CONN_MAX_AGE="0",
        CELERY_BROKER_URL="memory://",
        **extra,
    )
    return env


def _worker(code: str, env: dict) -> subprocess.Popen:
    """A Python process that sets Django up and runs ``code`` (the worker's one task)."""
    script = "import django; django.setup()\n" + code
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_a_webhook_worker_killed_mid_request_then_the_flush_delivers_it(receiver):
    creator = verified_user()
    from creators.services import creator_create

    creator_create(user=creator, handle=f"crash{creator.pk}", display_name="Crash")
    subscribe(creator, receiver.url, events=("payout.*",))
    with transaction.atomic():
        event = webhook_event_emit(
            user_id=creator.pk, type="payout.paid", key="crash:1", data={"n": 1}
        )
    (delivery,) = WebhookDelivery.objects.all()
    receiver.delay = 30  # the receiver holds the request: the worker waits for its answer

    worker = _worker(
        "from notifications.webhooks import webhook_endpoint_flush\n"
        f"webhook_endpoint_flush(endpoint_id={delivery.endpoint_id})\n",
        _env(),
    )
    _wait_for(lambda: len(receiver.requests) == 1, "the worker's request")
    _kill(worker)  # mid-request: the receiver has the event, we never saw its answer
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING  # not lost: the attempt never committed

    receiver.delay = 0
    assert webhook_flush_all() >= 0
    _wait_for(lambda: len(receiver.requests) == 2, "the redelivery")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    ids = {body["id"] for body in receiver.bodies()}
    assert ids == {event.public_id}  # the same event id twice: the receiver dedupes on it
    webhook_flush_all()
    assert len(receiver.requests) == 2  # delivered now: never again


class HoldingInbox:
    """An SMTP server that takes the message, then holds its answer while ``hold`` is set."""

    def __init__(self) -> None:
        self.messages: list = []
        self.hold = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        import email
        import email.policy

        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        while self.hold.is_set():
            await asyncio.sleep(0.05)
        return "250 OK"


def test_a_mail_worker_killed_mid_smtp_then_the_sweep_sends_it(settings):
    inbox = HoldingInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        user = verified_user(email="crash@example.com")
        with transaction.atomic():
            row = email_enqueue(
                event="crash:mail", user=user, template="verify_email",
                context={"link": "https://x/", "days": 3},
            )  # fmt: skip
        inbox.hold.set()
        env = _env(EMAIL_URL=f"smtp://127.0.0.1:{port}/")
        worker = _worker(
            f"from notifications.services import email_send\nemail_send(email_id={row.pk})\n",
            env,
        )
        _wait_for(lambda: len(inbox.messages) == 1, "the worker's SMTP DATA")
        _kill(worker)  # the server has the message; the worker died before our commit
        row.refresh_from_db()
        assert row.status == EmailStatus.PENDING  # not lost
        inbox.hold.clear()
        assert email_outbox_flush()["sent"] == 1
        row.refresh_from_db()
        assert row.status == EmailStatus.SENT
        assert email_outbox_flush()["sent"] == 0  # sent now: never again
    finally:
        inbox.hold.clear()
        controller.stop()
    # At least once; a repeat is the same message (one Message-ID) for the receiver to drop.
    assert len(inbox.messages) == 2
    assert {m["Message-ID"] for m in inbox.messages} == {row.message_id}
    assert OutboxEmail.objects.filter(event="crash:mail").count() == 1
