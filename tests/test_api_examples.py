"""Every operation that takes a body has an example request, and the example is right (#22).

config/openapi_examples.py puts them in the schema. Here: every body operation has one; each
validates against its own request schema (OpenAPI 3.0: ``nullable`` and the formats
checked); and the server accepts each one, sent in an app's order by one person (sign up,
buy coins, gift, become a creator, ...), with only ids that the database chose put in
(a path's id, a tier's id).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import socket
import time
import uuid
from typing import Any

import jsonschema
import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import UserFactory
from gifts.tests.factories import GiftFactory, make_creator
from memberships.tests.factories import make_tier
from payouts.models import PayoutMethod
from payouts.tests.factories import give_available_diamonds
from tests.helpers import launch_chromium
from wallets.services import wallet_adjust

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _body_operations(schema):
    for path, operations in schema["paths"].items():
        for method in METHODS:
            operation = operations.get(method)
            if operation and "requestBody" in operation:
                yield method, path, operation["requestBody"]["content"]["application/json"]


def _json_schema(node):
    """OpenAPI 3.0's ``nullable`` as JSON Schema (``type`` null allowed)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def test_every_body_operation_has_an_example(schema):
    missing = [
        f"{method.upper()} {path}"
        for method, path, content in _body_operations(schema)
        if not content.get("examples")
    ]
    assert len(list(_body_operations(schema))) >= 19
    assert missing == []


def test_every_example_validates_against_its_own_schema(schema):
    components = _json_schema(copy.deepcopy(schema["components"]))
    problems = []
    for method, path, content in _body_operations(schema):
        document = {**_json_schema(content["schema"]), "components": components}
        validator = jsonschema.Draft7Validator(
            document, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
        for name, example in content["examples"].items():
            assert example["summary"], (method, path)
            problems += [
                f"{method.upper()} {path} ({name}): {error.message}"
                for error in validator.iter_errors(example["value"])
            ]
    assert problems == []


def _examples(schema) -> dict[tuple[str, str], Any]:
    return {
        (method, path): next(iter(content["examples"].values()))["value"]
        for method, path, content in _body_operations(schema)
    }


def _signed(body: bytes) -> str:
    stamp = int(time.time())
    secret = settings.STRIPE_WEBHOOK_SECRET.encode()
    digest = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


@pytest.mark.django_db(transaction=True)
def test_the_server_accepts_every_example(schema, settings, monkeypatch):
    settings.PAYOUT_DESTINATION_HOLD_HOURS = 0
    real_getaddrinfo = socket.getaddrinfo

    def public_dns(host, *args, **kwargs):  # the example's host, as the internet has it
        if host == "app.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", public_dns)
    GiftFactory(slug="rose", name="Rose", coins=1)
    demo = make_creator("demo")
    demo_tier = make_tier(demo)
    UserFactory(username="viewer")
    examples = _examples(schema)
    api = APIClient()
    seen: dict[str, int] = {}

    def send(method: str, path: str, *, url: str | None = None, **extra) -> dict:
        body = examples.pop((method, path))
        body = {**body, **extra.pop("body", {})}
        headers = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4()), **extra}
        answer = getattr(api, method)(url or path, body, format="json", **headers)
        seen[f"{method.upper()} {path}"] = answer.status_code
        assert answer.status_code < 300, (method, path, answer.content)
        return answer.json() if answer.content else {}

    signed_up = send("post", "/api/v1/auth/register/")
    api.credentials(HTTP_AUTHORIZATION=f"Token {signed_up['token']}")
    assert send("post", "/api/v1/auth/token/")["token"]
    send("post", "/api/v1/auth/password/reset/")
    send("put", "/api/v1/wallet/limits/")
    assert send("post", "/api/v1/recharges/")["status"] == "succeeded"
    me = signed_up["user"]["id"]
    wallet_adjust(user=User.objects.get(pk=me), coins=5000, reason="test", actor=None)
    gift = send("post", "/api/v1/gifts/send/")
    send(
        "post", "/api/v1/messages/{event_id}/report/", url=f"/api/v1/messages/{gift['id']}/report/"
    )
    send(
        "post",
        "/api/v1/creators/{handle}/memberships/",
        url="/api/v1/creators/demo/memberships/",
        body={"tier": demo_tier.pk},
    )
    send("post", "/api/v1/creators/")
    tier = send("post", "/api/v1/creators/me/tiers/")
    send(
        "patch",
        "/api/v1/creators/me/tiers/{tier_id}/",
        url=f"/api/v1/creators/me/tiers/{tier['id']}/",
    )
    send("post", "/api/v1/creators/me/goals/")
    send("patch", "/api/v1/creators/me/moderation/")
    send("post", "/api/v1/creators/me/moderation/muted/")
    send("post", "/api/v1/webhooks/endpoints/")
    send("put", "/api/v1/payouts/method/")
    PayoutMethod.objects.filter(creator__user_id=me).update(
        is_verified=True, verified_at=timezone.now()
    )
    give_available_diamonds(User.objects.get(pk=me), 10_000)
    send("post", "/api/v1/payouts/")
    event = json.dumps(examples[("post", "/api/v1/webhooks/stripe/")]).encode()
    stripe = APIClient().post(
        "/api/v1/webhooks/stripe/",
        event,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=_signed(event),
    )
    examples.pop(("post", "/api/v1/webhooks/stripe/"))
    seen["POST /api/v1/webhooks/stripe/"] = stripe.status_code
    assert stripe.status_code < 300, stripe.content
    send("post", "/api/v1/auth/password/")  # last: it changes the examples' password

    assert examples == {}, f"examples not sent: {sorted(examples)}"
    assert all(status < 300 for status in seen.values()), seen


@pytest.fixture
def browser():
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
    connections.close_all()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_interactive_docs_work_offline_and_fill_in_the_example(browser, live_server):
    page = browser.new_page()
    outside: list[str] = []

    def only_our_server(route):
        if route.request.url.startswith(live_server.url):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_our_server)
    page.goto(f"{live_server.url}/api/docs/")
    operation = page.locator("#operations-gifts-api_v1_gifts_send_create")
    operation.locator(".opblock-summary").click()
    body = operation.locator(".body-param__example, .microlight").first
    body.wait_for()
    assert '"gift": "rose"' in body.inner_text()
    operation.get_by_role("button", name="Try it out").click()
    editor = operation.locator("textarea.body-param__text")
    assert '"creator": "demo"' in editor.input_value()
    assert outside == []


def test_an_empty_live_id_is_valid_by_the_schema_as_by_the_server(schema):
    # "" once matched both branches of the schema's oneOf (a pattern allowing "" and the
    # blank string), so the schema called invalid what the server takes (no live stream).
    components = _json_schema(copy.deepcopy(schema["components"]))
    bodies = {
        ("post", "/api/v1/gifts/send/"): {"creator": "demo", "gift": "rose", "live_id": ""},
        ("post", "/api/v1/creators/me/goals/"): {
            "title": "Mic",
            "target_coins": 5,
            "deadline": "2030-01-01T00:00:00Z",
            "live_id": "",
        },
    }
    for method, path, content in _body_operations(schema):
        if (method, path) in bodies:
            document = {**_json_schema(content["schema"]), "components": components}
            validator = jsonschema.Draft7Validator(document)
            body = bodies.pop((method, path))
            assert list(validator.iter_errors(body)) == [], path
            assert not validator.is_valid({**body, "live_id": "a b"}), path
    assert bodies == {}
