"""Payout status in words: expected date, why it is held or failed, what the creator can do."""

import os

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import Client

from payouts.models import Payout, PayoutMethod, PayoutStatus, Rail, TaxFormStatus
from payouts.services import (
    payout_approve,
    payout_batch_run,
    payout_cancel,
    payout_mark_failed,
    payout_send,
)
from payouts.tests.factories import give_available_diamonds, make_payout_creator
from tests.helpers import client_for, launch_chromium, pdf_text

pytestmark = pytest.mark.django_db


def _api_row(creator) -> dict:
    (row,) = client_for(creator.user).get("/api/v1/payouts/").json()["results"]
    return row


def test_tax_form_missing_hold_says_why_and_what_to_do(admin_user):
    creator = make_payout_creator(200_000)  # USD 1,000: passes the USD 600 tax threshold
    payout_batch_run()
    row = _api_row(creator)
    assert row["status"] == "awaiting_approval"
    assert row["status_reason"].startswith("Held: tax form missing")
    assert "W-9" in row["next_step"]
    assert row["expected_at"] is not None

    # Once the form is recorded and staff approve, it is on its way with a date.
    PayoutMethod.objects.filter(creator=creator).update(tax_form_status=TaxFormStatus.W9)
    payout_approve(payout=Payout.objects.get(creator=creator), actor=admin_user)
    row = _api_row(creator)
    assert row["status"] == "requested"
    assert row["status_reason"] == "On its way by bank transfer."
    assert row["expected_at"] > row["created_at"]
    call_command("verify_ledger")


def test_awaiting_approval_above_the_threshold(settings):
    settings.PAYOUT_APPROVAL_ABOVE = 15
    creator = make_payout_creator(4000, tax_form_status=TaxFormStatus.W8BEN)
    payout_batch_run()
    row = _api_row(creator)
    assert row["status"] == "awaiting_approval"
    assert row["status_reason"].startswith("Awaiting approval")
    assert row["next_step"].startswith("Nothing to do")
    assert row["expected_at"]
    call_command("verify_ledger")


def test_method_changed_while_held_is_method_unverified(settings):
    settings.PAYOUT_APPROVAL_ABOVE = 15
    creator = make_payout_creator(4000, tax_form_status=TaxFormStatus.W9)
    payout_batch_run()
    PayoutMethod.objects.filter(creator=creator).update(is_verified=False)
    row = _api_row(creator)
    assert row["status_reason"].startswith("Held: your payout method is not verified")
    assert "/creator/payout-method/" in row["next_step"]
    assert row["expected_at"] is None


def test_bank_returned_it(admin_user):
    creator = make_payout_creator(4000)
    payout_batch_run()
    payout = payout_send(payout_id=Payout.objects.get(creator=creator).pk)
    payout_mark_failed(payout=payout, actor=admin_user, reason="R01 account closed")
    row = _api_row(creator)
    assert row["status"] == "failed"
    assert row["status_reason"].startswith("Failed: your bank returned the transfer")
    assert "IBAN" in row["next_step"]
    assert row["expected_at"]
    call_command("verify_ledger")


def test_stripe_refused_an_unverified_account(connect_fake):
    account_id = connect_fake.add_account(payouts_enabled=False)
    creator = make_payout_creator(4000, rail=Rail.STRIPE, stripe_account_id=account_id)
    payout_batch_run()
    payout = payout_send(payout_id=Payout.objects.get(creator=creator).pk)
    assert (payout.status, payout.failure_code) == (PayoutStatus.FAILED, "account_invalid")
    row = _api_row(creator)
    assert row["status_reason"].startswith("Failed: your payout method is not verified")
    assert "Stripe" in row["status_reason"]
    assert "/creator/payout-method/" in row["next_step"]
    call_command("verify_ledger")


def test_cancelled_by_staff(admin_user):
    creator = make_payout_creator(4000)
    payout_batch_run()
    payout_cancel(payout=Payout.objects.get(creator=creator), actor=admin_user, reason="review")
    row = _api_row(creator)
    assert row["status_reason"] == "Cancelled by our payments team."
    assert "back in your available balance" in row["next_step"]


@pytest.mark.parametrize(
    ("setup", "blocked"),
    [
        (dict(with_method=False), "Add a payout method."),
        (dict(verified=False), "Your bank details are waiting for verification"),
        (dict(verified=False, rail=Rail.STRIPE, stripe_account_id="acct_x"), "Finish Stripe"),
        (dict(), "Reach USD 10.00"),
    ],
)
def test_next_payout_estimate_says_what_blocks_it(setup, blocked):
    creator = make_payout_creator(500, **setup)
    body = client_for(creator.user).get("/api/v1/payouts/next/").json()
    assert body["blocked_because"].startswith(blocked)
    assert body["estimate"] is None
    assert body["next_step"]


def test_next_payout_estimate_when_nothing_blocks():
    creator = make_payout_creator(4000)
    body = client_for(creator.user).get("/api/v1/payouts/next/").json()
    assert body["blocked_because"] == ""
    assert body["estimate"] == {"amount": "20.00", "currency": "USD"}
    assert body["expected_at"] > body["next_run"]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_creator_reads_the_reason_and_downloads_the_statement(live_server, admin_user):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    creator = make_payout_creator(200_000)  # held for the tax form
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    give_available_diamonds(creator.user, 100)
    client = Client()
    client.force_login(creator.user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.cookies[settings.SESSION_COOKIE_NAME].value

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            context = browser.new_context(accept_downloads=True)
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
            )
            page = context.new_page()
            page.goto(f"{live_server.url}/creator/")
            row = page.locator(f'#payout-history tr[data-payout="{payout.pk}"]')
            expect(row.locator("[data-status-reason]")).to_contain_text("tax form missing")
            expect(row.locator("[data-next-step]")).to_contain_text("W-9")
            expect(row.locator("[data-expected]")).to_be_visible()
            expect(page.locator("#next-payout [data-blocked]")).to_contain_text(
                "A payout is already on its way"
            )

            row.get_by_role("link", name="View").click()
            expect(page.locator("h1")).to_contain_text(f"payout #{payout.pk}")
            expect(page.locator("[data-total-diamonds]")).to_have_attribute(
                "data-total-diamonds", "200000"
            )
            expect(page.locator("[data-fees]")).to_contain_text("0.00")
            with page.expect_download() as download_info:
                page.get_by_role("link", name="Download PDF").click()
            pdf = download_info.value.path().read_bytes()
            assert pdf.startswith(b"%PDF")
            assert "Total 200,000 diamonds" in pdf_text(pdf)
        finally:
            browser.close()
    connections.close_all()
    call_command("verify_ledger")
