"""An example request for every operation that takes a body (issue #22 item 6).

``add_request_examples`` (a drf-spectacular postprocessing hook) puts each example under its
operation's ``requestBody`` (``application/json`` → ``examples``), where the interactive docs
(``/api/docs/``) fill the *Try it out* body with it and generated clients show it.
tests/test_api_examples.py checks that every body operation has one, that each validates
against its own schema, and that the server accepts it. Names match the ``make run`` demo
(creator ``demo``, gift ``rose``, viewer ``viewer``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any


def _a_week_ahead() -> str:
    """A goal's deadline must be 5 minutes to 90 days ahead: the example's is a week from the
    moment the schema is made, on the hour."""
    when = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=7)
    return when.isoformat().replace("+00:00", "Z")


def _goal() -> dict[str, Any]:
    return {
        "title": "New microphone",
        "description": "Better sound for every stream.",
        "target_coins": 20000,
        "deadline": _a_week_ahead(),
        "live_id": "demo-live-1",
        "all_or_nothing": True,
    }


# (method, path) -> (summary, body, or a function that makes the body when the schema is made)
REQUEST_EXAMPLES: dict[tuple[str, str], tuple[str, Any | Callable[[], Any]]] = {
    ("post", "/api/v1/auth/register/"): (
        "Sign up (18 or older)",
        {
            "username": "ada_l",
            "email": "ada@example.com",
            "password": "correct-horse-battery-staple",
            "date_of_birth": "1990-12-10",
        },
    ),
    ("post", "/api/v1/auth/token/"): (
        "Sign in",
        {"username": "ada_l", "password": "correct-horse-battery-staple"},
    ),
    ("post", "/api/v1/auth/password/"): (
        "Change my password",
        {
            "old_password": "correct-horse-battery-staple",
            "new_password": "a-new-long-passphrase-42",
        },
    ),
    ("post", "/api/v1/auth/password/reset/"): (
        "Mail me a reset link",
        {"email": "ada@example.com"},
    ),
    ("put", "/api/v1/wallet/limits/"): (
        "At most 5,000 coins a day, ask before a purchase above 2,000",
        {"daily_limit": 5000, "monthly_limit": None, "confirm_above": 2000},
    ),
    ("post", "/api/v1/recharges/"): (
        "Buy 500 coins in euros with a saved card",
        {"coins": 500, "currency": "EUR", "payment_method": "pm_card_visa"},
    ),
    ("post", "/api/v1/webhooks/stripe/"): (
        "Stripe's event (signed: the Stripe-Signature header)",
        {
            "id": "evt_1Example",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1Example", "object": "payment_intent"}},
        },
    ),
    ("post", "/api/v1/gifts/send/"): (
        "Two roses during a live stream, with a message",
        {
            "creator": "demo",
            "gift": "rose",
            "quantity": 2,
            "live_id": "demo-live-1",
            "message": "Great stream!",
        },
    ),
    ("post", "/api/v1/creators/"): (
        "Become a creator",
        {"handle": "ada-makes", "display_name": "Ada Makes", "bio": "Live knitting, Sundays."},
    ),
    ("post", "/api/v1/creators/me/goals/"): ("A goal for one live stream, all or nothing", _goal),
    ("post", "/api/v1/creators/me/tiers/"): (
        "A monthly tier",
        {"name": "Inner circle", "coins_per_month": 500, "perks": "A badge and early videos."},
    ),
    ("patch", "/api/v1/creators/me/tiers/{tier_id}/"): (
        "Change a tier's price",
        {"coins_per_month": 600},
    ),
    ("post", "/api/v1/creators/{handle}/memberships/"): (
        "Join a tier, and give a month to a friend",
        {"tier": 1, "gift_to": ["viewer"]},
    ),
    ("patch", "/api/v1/creators/me/moderation/"): (
        "Hide messages with these words and hold the rest for approval",
        {"blocked_words": ["spoiler", "buy followers"], "hold_messages": True},
    ),
    ("post", "/api/v1/creators/me/moderation/muted/"): (
        "Mute a viewer",
        {"username": "viewer"},
    ),
    ("post", "/api/v1/messages/{event_id}/report/"): (
        "Report a message",
        {"reason": "abuse", "note": "Insults another viewer."},
    ),
    ("put", "/api/v1/payouts/method/"): (
        'Be paid by bank transfer (or {"rail": "stripe", "password"} for Stripe)',
        {
            "rail": "manual",
            "account_holder": "Ada Lovelace",
            "iban": "GB82 WEST 1234 5698 7654 32",
            "password": "correct-horse-battery-staple",
        },
    ),
    ("post", "/api/v1/payouts/"): (
        "Cash out 4,000 diamonds now (leave out diamonds: all available)",
        {"diamonds": 4000},
    ),
    ("post", "/api/v1/webhooks/endpoints/"): (
        "Be told about gifts and payouts",
        {"url": "https://app.example.com/applause/hooks", "events": ["gift.received", "payout.*"]},
    ),
}


def add_request_examples(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: each body operation's example request."""
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            example = REQUEST_EXAMPLES.get((method, path))
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if example is None or body is None:
                continue
            summary, value = example
            value = value() if callable(value) else value
            content = body.get("content", {}).get("application/json")
            if content is not None:
                content["examples"] = {"example": {"summary": summary, "value": value}}
    return result
