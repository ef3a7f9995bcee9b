"""In headless Chromium: forgot the password, the mail's link, a new password, signed in."""

import os
import re

import pytest
from django.core import mail

from accounts import tasks
from accounts.tests.factories import UserFactory
from tests.helpers import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NEW = "a-brand-new-long-passphrase"


@pytest.fixture
def page(live_server, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The reset mail is queued for a Celery worker; run the task in place instead.
    monkeypatch.setattr(
        tasks.password_reset_send_task,
        "delay",
        lambda *args: tasks.password_reset_send_task.apply(args=args).get(),
    )
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.environ.get("CHROMIUM_PATH"):
        pytest.skip("CHROMIUM_PATH is not set")
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 360, "height": 780})
        page = context.new_page()
        page.set_default_timeout(20000)
        yield page
        context.close()
        browser.close()


def test_reset_a_forgotten_password_in_the_browser(page, live_server):
    user = UserFactory(email="forgetful@example.com")
    base = live_server.url
    page.goto(f"{base}/login/")
    page.click("a[href='/password/reset/']")
    page.fill("input[name=email]", user.email)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/password/reset/sent/")
    assert "Check your email" in page.inner_text("h1")

    # The mail waits in the email outbox; send what is due, as the beat sweep would.
    from notifications.services import email_outbox_flush

    assert email_outbox_flush()["sent"] == 1
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/reset/\S+/", mail.outbox[0].body).group(0)
    page.goto(link)
    assert page.inner_text("h1") == "Set a new password"
    page.fill("input[name=new_password1]", NEW)
    page.fill("input[name=new_password2]", NEW)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/reset/done/")

    page.goto(f"{base}/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", NEW)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/wallet/")
    user.refresh_from_db()
    assert user.check_password(NEW)
