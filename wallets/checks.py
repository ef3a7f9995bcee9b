"""Production refuses the public Stripe defaults (issue #14, item 2).

The defaults in config/settings.py are public: with ``STRIPE_WEBHOOK_SECRET`` left at
``whsec_applause_local`` anyone can sign a ``payment_intent.succeeded`` event, and with the
API base at localstripe every card "pays". So with ``DEBUG`` off:

- ``wallets.E001``: a Stripe value (secret key, publishable key, webhook secret, API base,
  Stripe.js URL) is still the built-in default, or empty;
- ``wallets.E002``: the API base, the Connect API base or the Stripe.js URL is not HTTPS;
- ``wallets.W001``: test-mode keys (``sk_test_`` / ``pk_test_``): no real money moves;
- ``wallets.W002``: ``STRIPE_ALLOW_LOCALSTRIPE`` turned E001/E002 into this warning (only
  honoured when the API base is this machine: benchmarks and the chaos run).

Registered as a deployment check (``manage.py check --deploy`` fails on it), and run by the
production entry points (``config/wsgi.py``, ``config/asgi.py``, the Celery worker and beat:
``refuse_unsafe_production``), so ``make serve``, ``make worker`` and ``make beat`` do not
start. Other management commands (``migrate``, ``spectacular``) are not refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from django.apps import AppConfig

DEFAULTED = ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")
URLS = ("STRIPE_API_BASE", "STRIPE_JS_URL", "STRIPE_CONNECT_API_BASE")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _value(name: str) -> str:
    return str(getattr(settings, name, "") or "").strip()


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK


@checks.register(checks.Tags.security, deploy=True)
def stripe_settings_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    if settings.DEBUG:
        return []
    defaults = getattr(settings, "STRIPE_BUILTIN_DEFAULTS", {})
    problems: list[tuple[str, str]] = []  # (setting, what is wrong)
    # Left unset, the Stripe.js URL is localstripe's stand-in under the API base.
    derived_js = f"{_value('STRIPE_API_BASE').rstrip('/')}/js.stripe.com/v3/"
    for name in (*DEFAULTED, "STRIPE_API_BASE", "STRIPE_JS_URL"):
        value = _value(name)
        if not value:
            problems.append((name, "is empty"))
        elif value == defaults.get(name) or (name == "STRIPE_JS_URL" and value == derived_js):
            problems.append((name, f"is the public built-in default ({value})"))
    for name in URLS:
        value = _value(name)
        if value and urlsplit(value).scheme != "https":
            problems.append((name, f"is not an https:// URL ({value})"))
    messages: list[checks.CheckMessage] = []
    local = getattr(settings, "STRIPE_ALLOW_LOCALSTRIPE", False) and all(
        _is_loopback(_value(name)) for name in URLS if _value(name)
    )
    if problems and local:
        messages.append(
            checks.Warning(
                "STRIPE_ALLOW_LOCALSTRIPE is on: payments go to localstripe on this machine "
                "(" + "; ".join(f"{name} {what}" for name, what in problems) + ").",
                hint="Only for benchmarks and the chaos run. Never in production.",
                id="wallets.W002",
            )
        )
        problems = []
    for name, what in problems:
        https = "is not an https" in what
        messages.append(
            checks.Error(
                f"{name} {what}. With DEBUG off the public development values are refused.",
                hint=(
                    "Set it to Stripe's: https://api.stripe.com (API base), "
                    "https://js.stripe.com/v3/ (Stripe.js)."
                    if https
                    else "Set it from your Stripe dashboard (Developers → API keys; the "
                    "webhook endpoint's signing secret). See docs/operations.md."
                ),
                id="wallets.E002" if https else "wallets.E001",
            )
        )
    test_mode = [
        name
        for name, prefix in (
            ("STRIPE_SECRET_KEY", "sk_test_"),
            ("STRIPE_PUBLISHABLE_KEY", "pk_test_"),
        )
        if _value(name).startswith(prefix) and _value(name) != defaults.get(name)
    ]
    if test_mode and not local:
        messages.append(
            checks.Warning(
                f"{' and '.join(test_mode)} are Stripe test-mode keys: no real money moves.",
                hint="Fine for a staging site; production needs the live keys.",
                id="wallets.W001",
            )
        )
    return messages


def refuse_unsafe_production() -> None:
    """Called by the production entry points: raise instead of serving with a serious check
    error. Test runs (pytest) are left alone: their settings are development ones."""
    if settings.DEBUG or getattr(settings, "TESTING", False):
        return
    errors = [m for m in stripe_settings_check() if m.is_serious()]
    if errors:
        raise ImproperlyConfigured(
            "Refusing to start with DEBUG off:\n" + "\n".join(f"  {m}" for m in errors)
        )
