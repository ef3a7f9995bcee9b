"""The Stripe Connect stand-in as ``make run`` runs it: a process of its own (issue #22 item 5).

A creator chooses Stripe payouts over the API, finishes the pretend onboarding in the browser,
is paid by the batch, and ``reconcile`` checks the transfer, also after the stand-in restarted
(its state file).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.tests.factories import PASSWORD
from payouts.models import Payout, PayoutMethod, PayoutStatus
from payouts.services import payout_batch_run
from payouts.tests.factories import make_payout_creator
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _start(port: int, state: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "payouts.connect_standin",
            "--port",
            str(port),
            "--state",
            str(state),
            "--onboarding",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the stand-in did not listen within 30 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    assert proc.wait(timeout=10) == 0  # SIGTERM is a clean stop


@pytest.mark.slow  # a generator or a server process: several seconds
def test_a_creator_chooses_stripe_onboards_is_paid_and_reconciled(
    tmp_path, settings, eager_celery, django_capture_on_commit_callbacks
):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    state = tmp_path / "connect.json"
    settings.STRIPE_CONNECT_API_BASE = base
    settings.PAYOUT_DESTINATION_HOLD_HOURS = 0  # as make run sets it
    proc = _start(port, state)
    try:
        creator = make_payout_creator(4000, with_method=False)
        api = client_for(creator.user)

        chosen = api.put("/api/v1/payouts/method/", {"rail": "stripe", "password": PASSWORD})

        assert chosen.status_code == 200, chosen.content
        body = chosen.json()
        assert body["rail"] == "stripe"
        assert body["verified"] is False
        assert body["onboarding_url"].startswith(f"{base}/onboarding/acct_")
        method = PayoutMethod.objects.get(creator=creator)
        # Not onboarded yet: Stripe says no payouts, so the batch leaves the creator out.
        payout_batch_run()
        assert not Payout.objects.filter(creator=creator).exists()

        # The browser: the onboarding page, its button, back to our return page.
        status, _headers, page = _get(body["onboarding_url"])
        assert status == 200
        assert b"Finish onboarding" in page
        opener = urllib.request.build_opener(_NoRedirect)
        finish = urllib.request.Request(body["onboarding_url"], data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(finish, timeout=10)
        assert redirect.value.code == 303
        back = redirect.value.headers["Location"]
        assert back == "http://testserver/creator/payout-method/return/"
        browser = Client()
        browser.force_login(creator.user)
        assert browser.get(urllib.parse.urlsplit(back).path).status_code == 302
        method.refresh_from_db()
        assert method.is_verified

        with django_capture_on_commit_callbacks(execute=True):
            payout_batch_run()

        payout = Payout.objects.get(creator=creator)
        assert payout.status == PayoutStatus.PAID
        assert payout.destination == method.stripe_account_id
        query = urllib.parse.urlencode({"transfer_group": f"payout-{payout.pk}"})
        status, _headers, listed = _get(f"{base}/v1/transfers?{query}")
        (transfer,) = json.loads(listed)["data"]
        assert (transfer["id"], transfer["amount"]) == (payout.rail_reference, 2000)
        assert transfer["destination"] == method.stripe_account_id

        call_command("reconcile")  # raises CommandError when a part fails

        # make run restarted: the account and the transfer are still there.
        _stop(proc)
        proc = _start(port, state)
        status, _headers, account = _get(f"{base}/v1/accounts/{method.stripe_account_id}")
        assert status == 200
        assert json.loads(account)["payouts_enabled"] is True
        call_command("reconcile")
        payout.refresh_from_db()
        assert payout.status == PayoutStatus.PAID
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
