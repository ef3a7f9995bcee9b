"""``make serve`` (scripts/serve.py): both servers it can start take a gift over real HTTP with
``DEBUG`` off, and settings it cannot use are refused before any server starts."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from knox.models import AuthToken

from accounts.tests.factories import UserFactory
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import free_port, subprocess_env
from wallets.services import wallet_get

REPO = Path(__file__).resolve().parents[1]


def _serve_module():
    spec = importlib.util.spec_from_file_location("applause_serve", REPO / "scripts" / "serve.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gunicorn_is_the_default_with_its_config_file():
    argv = _serve_module().command({})
    assert Path(argv[0]).name == "gunicorn"
    assert argv[1:3] == ["-c", "config/gunicorn.conf.py"]


def test_granian_gets_the_workers_threads_and_address_asked_for():
    argv = _serve_module().command(
        {
            "WEB_SERVER": "granian",
            "WEB_WORKERS": "2",
            "WEB_THREADS": "6",
            "HOST": "127.0.0.1",
            "PORT": "9001",
        }
    )
    assert Path(argv[0]).name == "granian"
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--interface"] == "wsgi"
    assert pairs["--workers"] == "2"
    assert pairs["--blocking-threads"] == "6"
    assert pairs["--host"] == "127.0.0.1"
    assert pairs["--port"] == "9001"
    assert argv[-1] == "config.wsgi:application"


def test_granian_defaults_to_cores_plus_one_workers_of_eight_threads():
    argv = _serve_module().command({"WEB_SERVER": "granian"})
    assert argv[argv.index("--workers") + 1] == str((os.cpu_count() or 1) + 1)
    assert argv[argv.index("--blocking-threads") + 1] == "8"
    assert argv[argv.index("--port") + 1] == "8000"


@pytest.mark.parametrize(
    "env",
    [
        {"WEB_SERVER": "nginx"},
        {"WEB_SERVER": "granian", "WEB_WORKERS": "0"},
        {"WEB_SERVER": "granian", "WEB_THREADS": "many"},
        {"WEB_SERVER": "granian", "PORT": "-1"},
    ],
)
def test_settings_it_cannot_use_are_refused_by_name(env):
    with pytest.raises(SystemExit) as refused:
        _serve_module().command(env)
    assert any(name in str(refused.value) for name in env)


def _call(port: int, path: str, *, body=None, headers=None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _wait_for_health(port: int, server: subprocess.Popen, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("web_server", ["gunicorn", "granian"])
def test_make_serve_takes_a_gift_once_and_refuses_bad_input(transactional_db, tmp_path, web_server):
    make_creator("servestar")
    GiftFactory(slug="serve-rose", coins=10)
    sender = fund(UserFactory(), 100)
    token = AuthToken.objects.create(user=sender)[1]
    port = free_port()
    env = subprocess_env(
        DEBUG="0",
        WEB_SERVER=web_server,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_WORKERS="1",
        WEB_THREADS="2",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
    )
    env["SECRET_KEY"] = "serve-test-" + uuid.uuid4().hex * 2  # DEBUG off: a real-looking one
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "scripts/serve.py"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    auth = {"Authorization": f"Token {token}"}
    gift = {"creator": "servestar", "gift": "serve-rose", "quantity": 2}
    try:
        assert _wait_for_health(port, server, 60), (tmp_path / "server.log").read_text()[-2000:]
        key = {"Idempotency-Key": uuid.uuid4().hex}
        status, first = _call(port, "/api/v1/gifts/send/", body=gift, headers={**auth, **key})
        assert status == 201, first
        assert first["coins_spent"] == 20
        assert first["wallet"] == {"coins": 80}
        status, replay = _call(port, "/api/v1/gifts/send/", body=gift, headers={**auth, **key})
        assert (status, replay["id"]) == (201, first["id"])

        bad = {**gift, "quantity": 0}
        again = {"Idempotency-Key": uuid.uuid4().hex}
        status, refused = _call(port, "/api/v1/gifts/send/", body=bad, headers={**auth, **again})
        assert status == 400, refused
        assert "quantity" in refused["error"]["fields"]
        status, anonymous = _call(port, "/api/v1/gifts/send/", body=gift, headers=key)
        assert status == 401, anonymous
        assert anonymous["error"]["code"]
    finally:
        os.killpg(server.pid, 9)
        server.wait()
        log.close()
    assert wallet_get(user=sender).balance == 80


@pytest.mark.parametrize("web_server", ["gunicorn", "granian"])
def test_a_refused_production_setting_stops_make_serve_at_once(web_server):
    """The public development Stripe values with DEBUG off: the launcher refuses before any
    server starts (granian alone would respawn failing workers for ~30 s)."""
    dropped = ("APPLAUSE_TESTING", "STRIPE_API_BASE", "STRIPE_ALLOW_LOCALSTRIPE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        DEBUG="0",
        WEB_SERVER=web_server,
        SECRET_KEY="serve-test-" + uuid.uuid4().hex * 2,
        ALLOWED_HOSTS="127.0.0.1",
        PORT=str(free_port()),
        STRIPE_API_BASE="http://127.0.0.1:8420",
    )
    started = time.monotonic()
    refused = subprocess.run(
        [sys.executable, "scripts/serve.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "Refusing to start with DEBUG off" in refused.stderr
    assert "STRIPE_API_BASE" in refused.stderr
    assert time.monotonic() - started < 30
