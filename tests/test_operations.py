import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_settings():
    # Playwright tests set DJANGO_ALLOW_ASYNC_UNSAFE for their own process; production doesn't.
    dropped = {"DEBUG", "PYTEST_XDIST_WORKER", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    # make test's localstripe values (and STRIPE_ALLOW_LOCALSTRIPE) are what production refuses
    # (wallets/checks.py): production has Stripe's own.
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("STRIPE")}
    env.update(
        DEBUG="0",
        SECRET_KEY="prod-" + "k3y" * 20,
        ALLOWED_HOSTS="applause.example.com",
        APPLAUSE_TESTING="0",
        STRIPE_SECRET_KEY="sk_live_51Example0000000000000000",
        STRIPE_PUBLISHABLE_KEY="pk_live_51Example0000000000000000",
        STRIPE_WEBHOOK_SECRET="whsec_0123456789abcdefABCDEF",
        STRIPE_API_BASE="https://api.stripe.com",
        STRIPE_JS_URL="https://js.stripe.com/v3/",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_secret_key():
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env.update(DEBUG="0", APPLAUSE_TESTING="0")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


@pytest.mark.django_db
def test_healthz_and_readyz_on_real_services(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "broker", "cache", "stripe"}


@pytest.mark.django_db
def test_readyz_names_what_is_down_and_nothing_more(client, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["stripe"] == {"ok": False}
    assert body["checks"]["database"] == {"ok": True}
    assert body["down"] == ["stripe"]
    # No exception class, message or timing for a stranger to learn from.
    text = response.content.decode()
    assert "Error" not in text
    assert "refused" not in text.lower()
    assert "ms" not in body["checks"]


@pytest.mark.django_db
def test_readyz_checks_dependencies_at_most_every_30_seconds(client, settings, monkeypatch):
    from config import health

    assert settings.READYZ_CACHE_SECONDS == 30
    calls = []

    def stripe_down():
        calls.append(1)
        raise ConnectionRefusedError("no")

    monkeypatch.setitem(health._CHECKS, "stripe", stripe_down)
    clock = [1000.0]
    monkeypatch.setattr(health.time, "monotonic", lambda: clock[0])
    for _ in range(5):
        assert client.get("/readyz").status_code == 503
    assert len(calls) == 1  # one Stripe call for five probes
    clock[0] += 29
    client.get("/readyz")
    assert len(calls) == 1
    clock[0] += 1
    monkeypatch.setitem(health._CHECKS, "stripe", lambda: None)
    assert client.get("/readyz").status_code == 200  # checked again after 30 s


@pytest.mark.django_db
def test_security_headers_and_request_id(client):
    response = client.get("/", HTTP_X_REQUEST_ID="req-12345678")
    assert response["X-Request-ID"] == "req-12345678"
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp
    assert response["X-Frame-Options"] == "DENY"
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert generated != "bad id with spaces"
    assert len(generated) == 32
