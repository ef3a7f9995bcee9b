"""Password change (API and portal) and reset (API and portal): either one signs out every
other device and session; a reset request reveals nothing and is rate-limited."""

import re
import socket

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts import tasks
from accounts.tests.factories import PASSWORD, UserFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

CHANGE = "/api/v1/auth/password/"
RESET = "/api/v1/auth/password/reset/"
ME = "/api/v1/me/"
NEW = "a-brand-new-long-passphrase"


def _error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    return body["error"]


def _portal(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    assert client.get("/wallet/").status_code == 200
    return client


def _signed_out(client: Client) -> bool:
    response = client.get("/wallet/")
    return response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.fixture
def run_reset_tasks(monkeypatch, django_capture_on_commit_callbacks):
    """Reset mails are queued after the commit; run the task here, as a worker would, and the
    email outbox's send task too (eager), so the mail lands in ``mail.outbox``."""
    from config.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    queued = []

    def delay(*args):
        queued.append(args)
        return tasks.password_reset_send_task.apply(args=args).get()

    monkeypatch.setattr(tasks.password_reset_send_task, "delay", delay)

    class Runner:
        def post(self, client, *args, **kwargs):
            with django_capture_on_commit_callbacks(execute=True):
                return client.post(*args, **kwargs)

    runner = Runner()
    runner.queued = queued
    yield runner
    celery_app.conf.task_always_eager = previous


# --- Change -----------------------------------------------------------------------------------


def test_api_password_change_revokes_every_other_token_and_session():
    user = UserFactory()
    this_device, other_device = client_for(user), client_for(user)
    browser = _portal(user)

    response = this_device.post(
        CHANGE, {"old_password": PASSWORD, "new_password": NEW}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"tokens_revoked": 1}

    assert this_device.get(ME).status_code == 200
    _error(other_device.get(ME), 401, "authentication_failed")
    assert _signed_out(browser)
    user.refresh_from_db()
    assert user.check_password(NEW)
    assert AuthToken.objects.filter(user=user).count() == 1


def test_api_password_change_needs_the_current_password_and_a_good_new_one():
    user = UserFactory()
    client = client_for(user)
    other = client_for(user)
    error = _error(
        client.post(CHANGE, {"old_password": "nope", "new_password": NEW}, format="json"),
        400,
        "wrong_password",
    )
    assert "old_password" in error["fields"]
    error = _error(
        client.post(CHANGE, {"old_password": PASSWORD, "new_password": "123"}, format="json"),
        400,
        "validation_error",
    )
    assert "new_password" in error["fields"]
    _error(client.post(CHANGE, {"old_password": PASSWORD}, format="json"), 400, "validation_error")
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert other.get(ME).status_code == 200  # nothing was revoked
    _error(APIClient().post(CHANGE, {}, format="json"), 401, "not_authenticated")


def test_wrong_current_passwords_lock_the_change_like_a_login(settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    user = UserFactory()
    client = client_for(user)
    for _ in range(3):
        client.post(CHANGE, {"old_password": "guess", "new_password": NEW}, format="json")
    response = client.post(CHANGE, {"old_password": PASSWORD, "new_password": NEW}, format="json")
    assert response.status_code == 429
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_portal_password_change_keeps_this_session_only():
    user = UserFactory()
    here, elsewhere = _portal(user), _portal(user)
    app = client_for(user)
    page = here.get("/password/change/")
    assert page.status_code == 200
    assert b"Change your password" in page.content
    response = here.post(
        "/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW, "new_password2": NEW},
    )
    assert response.status_code == 302
    assert response["Location"] == "/password/change/done/"
    assert here.get("/wallet/").status_code == 200
    assert _signed_out(elsewhere)
    _error(app.get(ME), 401, "authentication_failed")
    assert not AuthToken.objects.filter(user=user).exists()


def test_portal_password_change_needs_a_login():
    response = Client().get("/password/change/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --- Reset ------------------------------------------------------------------------------------


def _reset_link(message) -> str:
    match = re.search(r"http://testserver(/reset/[^/\s]+/[^/\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_api_reset_answers_202_whoever_asks_and_mails_only_the_owner(run_reset_tasks):
    user = UserFactory(email="owner@example.com")
    known = run_reset_tasks.post(APIClient(), RESET, {"email": "OWNER@example.com"}, format="json")
    unknown = run_reset_tasks.post(
        APIClient(), RESET, {"email": "nobody@example.com"}, format="json"
    )
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    # The same path for both: a queued task each, whatever the address.
    assert [args[0] for args in run_reset_tasks.queued] == [
        "OWNER@example.com",
        "nobody@example.com",
    ]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [user.email]
    assert message.subject == "Reset your Applause password"
    html = message.alternatives[0][0]
    assert _reset_link(message) in html


def test_reset_link_sets_a_new_password_once_and_signs_everything_out(run_reset_tasks):
    user = UserFactory(email="fan@example.com")
    app, browser = client_for(user), _portal(user)
    run_reset_tasks.post(APIClient(), RESET, {"email": user.email}, format="json")
    link = _reset_link(mail.outbox[0])

    client = Client()
    page = client.get(link, follow=True)
    assert page.status_code == 200
    assert b"Set a new password" in page.content
    form_url = page.redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 302
    assert response["Location"] == "/reset/done/"

    user.refresh_from_db()
    assert user.check_password(NEW)
    _error(app.get(ME), 401, "authentication_failed")
    assert not AuthToken.objects.filter(user=user).exists()
    assert _signed_out(browser)
    # The link worked once.
    again = Client().get(link, follow=True)
    assert b"This link does not work" in again.content


def test_api_reset_bad_input_is_400(run_reset_tasks):
    _error(
        APIClient().post(RESET, {"email": "not-an-email"}, format="json"), 400, "validation_error"
    )
    assert not run_reset_tasks.queued


def test_reset_requests_are_limited_per_address_and_per_email(run_reset_tasks, settings):
    UserFactory(email="target@example.com")
    settings.PASSWORD_RESET_MAILS_PER_HOUR = 3
    answers = [
        run_reset_tasks.post(
            APIClient(),
            RESET,
            {"email": "target@example.com"},
            format="json",
            REMOTE_ADDR=f"10.0.0.{i}",
        ).status_code
        for i in range(6)
    ]
    assert answers == [202] * 6  # from six addresses: never a hint
    assert len(mail.outbox) == 3  # but at most three mails an hour to one address

    # One address asking again and again is throttled (5 an hour by default).
    statuses = [
        run_reset_tasks.post(
            APIClient(),
            RESET,
            {"email": f"x{i}@example.com"},
            format="json",
            REMOTE_ADDR="10.9.9.9",
        ).status_code
        for i in range(6)
    ]
    assert statuses == [202] * 5 + [429]


def test_portal_reset_page_reveals_nothing_and_is_limited(run_reset_tasks):
    UserFactory(email="member@example.com")
    client = Client()
    assert b"Reset your password" in client.get("/password/reset/").content
    known = run_reset_tasks.post(client, "/password/reset/", {"email": "member@example.com"})
    unknown = run_reset_tasks.post(client, "/password/reset/", {"email": "ghost@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/password/reset/sent/"
    assert len(mail.outbox) == 1
    for _ in range(4):  # five an hour per address by default
        last = run_reset_tasks.post(client, "/password/reset/", {"email": "ghost@example.com"})
    assert last.status_code == 429
    assert b"Too many reset requests" in last.content


def test_reset_mail_goes_through_the_outbox_to_a_real_smtp_server(settings):
    """The task writes one outbox row per request (run twice, still one); the outbox sends it
    to a real SMTP server on loopback; the link in it is then blanked from the stored row."""
    from aiosmtpd.controller import Controller

    from notifications.models import EmailStatus, OutboxEmail
    from notifications.services import email_outbox_flush

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = port
        settings.EMAIL_USE_TLS = False
        user = UserFactory(email="smtp@example.com")  # not verified: reset mail goes anyway
        args = (user.email, "https://applause.example/", "req-1")
        assert tasks.password_reset_send_task.apply(args=args).get() == 1
        assert tasks.password_reset_send_task.apply(args=args).get() == 1  # a retried task
        row = OutboxEmail.objects.get(user=user, template="password_reset")
        assert row.status == EmailStatus.PENDING
        assert row.category == "security"
        assert email_outbox_flush()["sent"] == 1
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.rcpt_tos == ["smtp@example.com"]
    body = envelope.content.decode()
    assert "https://applause.example/reset/" in body
    assert "Reset your Applause password" in body
    row.refresh_from_db()
    assert row.status == EmailStatus.SENT
    assert "/reset/" not in row.body_text + row.body_html
    assert get_user_model().objects.get(pk=user.pk).check_password(PASSWORD)


def test_accounts_asks_for_its_mail_through_a_registry_not_an_import():
    """accounts imports no app above it; notifications registers the senders at start-up."""
    import ast
    import pathlib

    from accounts import mail

    root = pathlib.Path(mail.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                assert top not in {
                    "notifications",
                    "wallets",
                    "gifts",
                    "creators",
                    "payouts",
                    "memberships",
                    "staff",
                }, f"{path.name} imports {name}"
    assert set(mail._senders) == set(mail.KINDS)
