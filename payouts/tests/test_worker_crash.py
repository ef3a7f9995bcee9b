"""Crash safety with a real Celery worker on Redis: SIGKILL it mid-batch, rerun, count money.

The batch command and the workers run as subprocesses against this test's database (so this
is a ``transaction=True`` test) and a Redis database of their own as the broker.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from payouts.models import Payout, PayoutStatus, Rail
from payouts.tests.factories import in_payout, make_payout_creator
from wallets.models import AccountKind
from wallets.services import account_balance, platform_account

REPO = Path(__file__).resolve().parents[2]
CREATORS = 8


def _env(fake_url: str) -> dict:
    db = connection.settings_dict
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.skip("needs Redis as the broker (run under scripts/with_services.sh)")
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    env = dict(os.environ)
    env.update(
        DATABASE_URL=(
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            if not db.get("PASSWORD")
            else f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        ),
        CELERY_BROKER_URL=broker.rsplit("/", 1)[0] + f"/{12 + index}",
        STRIPE_CONNECT_API_BASE=fake_url,
        SECRET_KEY=os.environ.get("SECRET_KEY") or "x" * 50,
        APPLAUSE_TESTING="1",
        CONN_MAX_AGE="0",
    )
    return env


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _start_worker(env: dict, log: Path) -> subprocess.Popen:
    celery = Path(sys.executable).with_name("celery")
    return subprocess.Popen(
        [
            str(celery),
            "-A",
            "config",
            "worker",
            "--concurrency",
            "1",
            "--loglevel",
            "info",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: SIGKILL takes the pool child too
    )


def _kill(worker: subprocess.Popen, sig=signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, sig)
    worker.wait(timeout=30)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sigkill_mid_batch_then_rerun_pays_everyone_exactly_once(
    transactional_db, connect_fake, tmp_path
):
    env = _env(connect_fake.url)
    creators = [
        make_payout_creator(
            3000 + i, rail=Rail.STRIPE, stripe_account_id=connect_fake.add_account()
        )
        for i in range(CREATORS)
    ]
    # Each transfer is recorded at the rail, then takes 0.4 s to answer: a kill usually lands
    # after the rail call and before we record the answer. One 500 exercises the real retry.
    connect_fake.transfer_delay = 0.4
    connect_fake.fail_next_transfers(1, "500")
    log = tmp_path / "worker.log"

    _manage(env, "run_payouts")
    assert Payout.objects.count() == CREATORS
    worker = _start_worker(env, log)
    try:
        _wait_for(lambda: len(connect_fake.transfers) >= 3, 60, "three transfers")
        time.sleep(0.2)  # inside the next transfer's answer
    finally:
        _kill(worker)

    assert Payout.objects.filter(status=PayoutStatus.PAID).count() < CREATORS
    paid_before_rerun = len(connect_fake.transfers)

    summary = _manage(env, "run_payouts")
    assert "0 payouts created" in summary
    worker = _start_worker(env, log)
    try:
        _wait_for(
            lambda: Payout.objects.filter(status=PayoutStatus.PAID).count() == CREATORS,
            90,
            "every payout paid",
        )
    finally:
        _kill(worker, signal.SIGTERM)

    assert paid_before_rerun >= 3
    assert Payout.objects.count() == CREATORS
    for creator in creators:
        (payout,) = Payout.objects.filter(creator=creator)
        transfers = connect_fake.transfers_for_payout(payout.pk)
        assert len(transfers) == 1, f"payout {payout.pk} has {len(transfers)} transfers"
        assert transfers[0]["id"] == payout.rail_reference
        assert in_payout(creator) == 0
    assert set(connect_fake.transfer_creates_per_key.values()) == {1}
    total = sum(3000 + i for i in range(CREATORS))
    assert account_balance(platform_account(AccountKind.DIAMONDS_PAID_OUT)) == total
    call_command("verify_ledger")
