"""`make run` starts the Stripe Connect stand-in and points the app at it (issue #22 item 5).

scripts/run.py, as `make run` calls it: with Stripe local (localstripe has no Connect) and no
STRIPE_CONNECT_API_BASE of the operator's, the launcher sets STRIPE_CONNECT_API_BASE for
everything it starts (and var/local.env, for manage.py) and starts payouts.connect_standin,
whose accounts wait for their onboarding.
"""

import importlib.util
import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def launcher(monkeypatch):
    spec = importlib.util.spec_from_file_location("applause_run", REPO / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setattr(module, "CONNECT_PORT", sock.getsockname()[1])
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:8420")
    # Set, then removed: monkeypatch puts the variable back as it was after the test.
    monkeypatch.setenv("STRIPE_CONNECT_API_BASE", "unset")
    monkeypatch.delenv("STRIPE_CONNECT_API_BASE")
    yield module
    for _name, proc in module.children:  # not stop_all(): it ignores pytest's signals
        proc.terminate()
        proc.wait(timeout=10)


def test_the_launcher_starts_the_standin_and_sets_the_connect_base(launcher, tmp_path):
    assert launcher.connect_standin_wanted() is True
    base = os.environ["STRIPE_CONNECT_API_BASE"]
    assert base == f"http://127.0.0.1:{launcher.CONNECT_PORT}"
    assert "STRIPE_CONNECT_API_BASE" in launcher.LOCAL_ENV_KEYS  # manage.py reconcile uses it

    assert launcher.start_connect_standin(tmp_path / "connect.json") is True

    assert [name for name, _proc in launcher.children] == ["connect"]
    create = urllib.request.Request(f"{base}/v1/accounts", data=b"type=express", method="POST")
    with urllib.request.urlopen(create, timeout=10) as answer:
        account = json.load(answer)
    assert account["id"].startswith("acct_")
    assert account["payouts_enabled"] is False  # until its onboarding is finished
    assert account["id"] in json.loads((tmp_path / "connect.json").read_text())["accounts"]


def test_an_operators_connect_base_or_a_remote_stripe_starts_nothing(launcher, monkeypatch):
    monkeypatch.setenv("STRIPE_CONNECT_API_BASE", "https://connect.example.com")
    assert launcher.connect_standin_wanted() is False
    assert os.environ["STRIPE_CONNECT_API_BASE"] == "https://connect.example.com"

    monkeypatch.delenv("STRIPE_CONNECT_API_BASE")
    monkeypatch.setenv("STRIPE_API_BASE", "https://api.stripe.com")
    assert launcher.connect_standin_wanted() is False
    assert "STRIPE_CONNECT_API_BASE" not in os.environ


def test_the_launchers_celery_command_is_one_celery_accepts(launcher):
    # `--quiet` after `worker` made Celery exit with status 2, and make run with it.
    command = launcher.celery_command()
    checked = subprocess.run(
        [*command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
    assert command.index("--quiet") < command.index("worker")
