"""Production refuses the public Stripe defaults, and the success webhook trusts only Stripe
(issue #14, item 2)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from djmoney.money import Money

from accounts.tests.factories import UserFactory
from wallets import stripe_gateway as gateway
from wallets.checks import refuse_unsafe_production, stripe_settings_check
from wallets.models import Discrepancy, LedgerTransaction, Recharge, RechargeStatus
from wallets.services import recharge_apply_success, recharge_create, wallet_get
from wallets.tests.factories import confirm_at_stripe, event_payload, intent_dict, post_event

REPO = Path(__file__).resolve().parents[2]

LIVE = {
    "STRIPE_SECRET_KEY": "sk_live_51Example0000000000000000",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_51Example0000000000000000",
    "STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdefABCDEF",
    "STRIPE_API_BASE": "https://api.stripe.com",
    "STRIPE_JS_URL": "https://js.stripe.com/v3/",
    "STRIPE_CONNECT_API_BASE": "https://api.stripe.com",
}
BUILTIN = {
    "STRIPE_SECRET_KEY": "sk_test_applause_local",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_applause_local",
    "STRIPE_WEBHOOK_SECRET": "whsec_applause_local",
    "STRIPE_API_BASE": "http://127.0.0.1:8420",
    "STRIPE_JS_URL": "http://127.0.0.1:8420/js.stripe.com/v3/",
    "STRIPE_CONNECT_API_BASE": "http://127.0.0.1:8420",
}


def ids(settings, **values) -> list[str]:
    settings.DEBUG = False
    settings.STRIPE_ALLOW_LOCALSTRIPE = False
    for name, value in values.items():
        setattr(settings, name, value)
    return sorted(str(m.id) for m in stripe_settings_check())


def test_live_values_pass(settings):
    assert ids(settings, **LIVE) == []


def test_every_builtin_default_is_an_error(settings):
    found = ids(settings, **BUILTIN)
    # The three keys and the two URLs are defaults; the three URLs are not https.
    assert found.count("wallets.E001") == 5
    assert found.count("wallets.E002") == 3
    assert ids(settings, DEBUG=True, **BUILTIN) == []


@pytest.mark.parametrize("name", sorted(LIVE))
def test_each_value_alone_is_refused(settings, name):
    if name == "STRIPE_CONNECT_API_BASE":
        assert ids(settings, **{**LIVE, name: "http://connect.example"}) == ["wallets.E002"]
        return
    assert ids(settings, **{**LIVE, name: BUILTIN[name]}) != []
    assert ids(settings, **{**LIVE, name: ""}) == ["wallets.E001"]


def test_plain_http_api_base_and_test_keys(settings):
    assert ids(settings, **{**LIVE, "STRIPE_API_BASE": "http://api.stripe.com"}) == ["wallets.E002"]
    test_keys = {"STRIPE_SECRET_KEY": "sk_test_51Staging", "STRIPE_PUBLISHABLE_KEY": "pk_test_5"}
    assert ids(settings, **{**LIVE, **test_keys}) == ["wallets.W001"]  # staging: a warning


def test_allow_localstripe_only_for_a_loopback_api_base(settings):
    settings.STRIPE_ALLOW_LOCALSTRIPE = True
    for name, value in BUILTIN.items():
        setattr(settings, name, value)
    settings.DEBUG = False
    assert [m.id for m in stripe_settings_check()] == ["wallets.W002"]
    refuse_unsafe_production()  # a warning does not stop it
    # Pointed at a real host, the escape hatch changes nothing.
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    settings.STRIPE_CONNECT_API_BASE = "https://api.stripe.com"
    found = [m.id for m in stripe_settings_check()]
    assert "wallets.W002" not in found
    assert "wallets.E001" in found


def _production_env(**extra) -> dict:
    dropped = {"DEBUG", "PYTEST_XDIST_WORKER", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("STRIPE")}
    env.update(
        DEBUG="0",
        SECRET_KEY="prod-" + "k3y" * 20,
        ALLOWED_HOSTS="applause.example.com",
        APPLAUSE_TESTING="0",
        **extra,
    )
    return env


def _run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_check_deploy_and_startup_refuse_the_defaults():
    env = _production_env()  # every STRIPE_* unset: the built-in defaults
    check = _run("manage.py", "check", "--deploy", env=env)
    assert check.returncode != 0
    assert "wallets.E001" in check.stderr
    assert "STRIPE_WEBHOOK_SECRET" in check.stderr
    assert "wallets.E002" in check.stderr
    for entry in ("config.wsgi", "config.asgi"):
        started = _run("-c", f"import {entry}", env=env)
        assert started.returncode != 0, entry
        assert "Refusing to start with DEBUG off" in started.stderr
    worker = _run("-m", "celery", "-A", "config", "worker", "--pool=solo", "-c", "1", env=env)
    assert worker.returncode != 0
    assert "Refusing to start" in worker.stderr
    # With real values the web entry point starts (imports) cleanly.
    assert _run("-c", "import config.wsgi", env=_production_env(**LIVE)).returncode == 0


# --- The success webhook never trusts the event body ---------------------------------------


@pytest.fixture
def viewer(db):
    return UserFactory()


def test_forged_success_event_for_an_unpaid_recharge_credits_nothing(viewer, api):
    recharge = recharge_create(user=viewer, currency="EUR", coins=1000)  # never paid
    body = {  # what a forger signs with a leaked secret: looks paid
        **intent_dict(recharge.payment_intent),
        "status": "succeeded",
        "amount": gateway.to_minor(recharge.price),
        "currency": "eur",
    }
    answer = post_event(api, event_payload("payment_intent.succeeded", body))
    assert answer.status_code == 200
    assert answer.json()["result"].startswith("not credited")
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.PENDING
    assert wallet_get(user=viewer).balance == 0
    assert Discrepancy.objects.filter(
        kind="succeeded_event_not_succeeded", object_id=recharge.payment_intent
    ).exists()


def test_success_event_body_cannot_change_what_is_credited(viewer, api):
    recharge = recharge_create(user=viewer, currency="GBP", coins=1000)
    confirm_at_stripe(recharge.payment_intent)
    # Our row says another price than Stripe charged; a body "agreeing" with our row is ignored.
    Recharge.objects.filter(pk=recharge.pk).update(price=Money("99.00", "GBP"))
    body = {**intent_dict(recharge.payment_intent), "amount": 9900}
    answer = post_event(api, event_payload("payment_intent.succeeded", body))
    assert answer.json()["result"] == "not credited (mismatch)"
    assert wallet_get(user=viewer).balance == 0
    assert Discrepancy.objects.filter(kind="amount_mismatch").count() == 1


def test_missing_amount_or_currency_is_a_mismatch(viewer):
    recharge = recharge_create(user=viewer, currency="USD", coins=1000)
    confirm_at_stripe(recharge.payment_intent)
    intent = intent_dict(recharge.payment_intent)
    assert recharge.payment_intent
    for missing in ("amount", "currency"):
        answer = {k: v for k, v in intent.items() if k != missing}
        recharge_apply_success(
            payment_intent_id=recharge.payment_intent,
            intent=gateway.PaymentIntent.from_stripe(answer),
        )
        recharge.refresh_from_db()
        assert recharge.status == RechargeStatus.PENDING
    assert wallet_get(user=viewer).balance == 0
    rows = Discrepancy.objects.filter(kind="amount_mismatch", object_id=recharge.payment_intent)
    assert rows.count() == 1  # one open item per problem
    # The true answer credits once.
    recharge_apply_success(
        payment_intent_id=recharge.payment_intent, intent=gateway.PaymentIntent.from_stripe(intent)
    )
    assert wallet_get(user=viewer).balance == 1000


def test_a_payment_intent_of_another_user_is_not_credited(viewer, api):
    recharge = recharge_create(user=viewer, currency="EUR", coins=1000)
    confirm_at_stripe(recharge.payment_intent)
    other = UserFactory()
    # Our row claims someone else's PaymentIntent (its metadata names the payer).
    Recharge.objects.filter(pk=recharge.pk).update(user=other)
    answer = post_event(
        api, event_payload("payment_intent.succeeded", intent_dict(recharge.payment_intent))
    )
    assert answer.json()["result"] == "not credited (mismatch)"
    assert not LedgerTransaction.objects.filter(kind="recharge").exists()
    assert Discrepancy.objects.filter(kind="metadata_mismatch").exists()
