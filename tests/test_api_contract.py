"""The public contract (PRODUCT.md): documented paths and response fields never disappear.

Apps rely on these; adding fields is fine, removing or renaming one fails this test.
"""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

# (method, path, status, fields of the response object; "results[]" = fields of list items)
CONTRACT = [
    ("post", "/api/v1/auth/register/", "201", ["user", "token"]),
    ("post", "/api/v1/auth/token/", "200", ["token"]),
    ("get", "/api/v1/me/", "200", ["id", "username", "is_creator", "creator_handle"]),
    ("get", "/api/v1/wallet/", "200", ["coins", "frozen"]),
    (
        "get",
        "/api/v1/wallet/entries/",
        "200",
        [
            "results",
            "next",
            "results[].id",
            "results[].kind",
            "results[].coins",
            "results[].balance_after",
            "results[].created_at",
            "results[].memo",
        ],
    ),
    (
        "get",
        "/api/v1/coin-packages/",
        "200",
        ["results", "results[].id", "results[].coins", "results[].bonus_coins", "results[].price"],
    ),
    (
        "post",
        "/api/v1/recharges/",
        "201",
        ["id", "status", "coins", "price", "payment_intent", "client_secret", "publishable_key"],
    ),
    ("get", "/api/v1/recharges/{id}/", "200", ["id", "status", "coins", "price", "created_at"]),
    (
        "get",
        "/api/v1/gifts/",
        "200",
        [
            "results",
            "results[].id",
            "results[].slug",
            "results[].name",
            "results[].coins",
            "results[].image_url",
            "results[].available_until",
        ],
    ),
    ("post", "/api/v1/gifts/send/", "201", ["id", "coins_spent", "wallet"]),
    ("post", "/api/v1/creators/", "201", ["handle", "display_name"]),
    ("get", "/api/v1/creators/{handle}/", "200", ["handle", "display_name"]),
    (
        "get",
        "/api/v1/creators/{handle}/leaderboard/",
        "200",
        ["results", "results[].username", "results[].coins"],
    ),
    (
        "get",
        "/api/v1/creators/me/earnings/",
        "200",
        ["diamonds_pending", "diamonds_available", "diamonds_paid", "available_value"],
    ),
    (
        "get",
        "/api/v1/payouts/",
        "200",
        [
            "results",
            "next",
            "results[].id",
            "results[].diamonds",
            "results[].amount",
            "results[].status",
            "results[].created_at",
            "results[].paid_at",
        ],
    ),
    ("get", "/api/v1/payouts/method/", "200", ["rail", "verified"]),
    ("put", "/api/v1/payouts/method/", "200", ["rail", "verified"]),
    # Second round: memberships (issue #18).
    (
        "get",
        "/api/v1/creators/me/tiers/",
        "200",
        [
            "results",
            "results[].id",
            "results[].name",
            "results[].coins_per_month",
            "results[].perks",
            "results[].members",
        ],
    ),
    (
        "post",
        "/api/v1/creators/me/tiers/",
        "201",
        ["id", "name", "coins_per_month", "perks", "members"],
    ),
    (
        "patch",
        "/api/v1/creators/me/tiers/{id}/",
        "200",
        ["id", "name", "coins_per_month", "perks", "members"],
    ),
    (
        "get",
        "/api/v1/creators/{handle}/tiers/",
        "200",
        [
            "results",
            "results[].id",
            "results[].name",
            "results[].coins_per_month",
            "results[].perks",
            "results[].members",
        ],
    ),
    (
        "post",
        "/api/v1/creators/{handle}/memberships/",
        "200",
        ["id", "creator", "tier", "status", "current_period_end", "months"],
    ),
    (
        "get",
        "/api/v1/memberships/",
        "200",
        [
            "results",
            "next",
            "results[].id",
            "results[].creator",
            "results[].tier",
            "results[].status",
            "results[].current_period_end",
            "results[].months",
        ],
    ),
    (
        "get",
        "/api/v1/creators/{handle}/fans/{username}/",
        "200",
        ["username", "level", "fan_level", "badges", "membership"],
    ),
    (
        "get",
        "/api/v1/creators/{handle}/leaderboard/",
        "200",
        ["results", "results[].username", "results[].coins", "results[].days"],
    ),
    (
        "delete",
        "/api/v1/memberships/{id}/",
        "200",
        ["id", "creator", "tier", "status", "current_period_end", "months"],
    ),
    # Second round: goals and the split shown before paying (issue #19).
    (
        "get",
        "/api/v1/creators/me/goals/",
        "200",
        [
            "results",
            "results[].id",
            "results[].title",
            "results[].target_coins",
            "results[].raised_coins",
            "results[].deadline",
            "results[].all_or_nothing",
            "results[].status",
        ],
    ),
    (
        "post",
        "/api/v1/creators/me/goals/",
        "201",
        ["id", "title", "target_coins", "raised_coins", "deadline", "all_or_nothing", "status"],
    ),
    (
        "get",
        "/api/v1/creators/{handle}/goals/",
        "200",
        ["results", "results[].id", "results[].raised_coins", "results[].status"],
    ),
    ("post", "/api/v1/gifts/send/", "201", ["creator_value"]),
    (
        "get",
        "/api/v1/gifts/quote/",
        "200",
        ["coins", "diamonds", "creator_value", "platform_value", "rate"],
    ),
]
WEBHOOK = ("post", "/api/v1/webhooks/stripe/")


@pytest.fixture(scope="module")
def openapi():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    # Path parameters are positional in a URL: compare templates, not parameter names.
    schema["paths"] = {_template(path): ops for path, ops in schema["paths"].items()}
    return schema


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _resolve(openapi, schema):
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = openapi["components"]["schemas"][name]
    for combined in ("allOf", "oneOf"):
        if combined in schema and len(schema[combined]) == 1:
            return _resolve(openapi, schema[combined][0])
    return schema


def _properties(openapi, schema):
    return _resolve(openapi, schema).get("properties", {})


@pytest.mark.parametrize(("method", "path", "status", "fields"), CONTRACT, ids=lambda v: str(v))
def test_documented_response_fields_exist(openapi, method, path, status, fields):
    assert _template(path) in openapi["paths"], f"{path} disappeared from the API"
    operation = openapi["paths"][_template(path)].get(method)
    assert operation is not None, f"{method.upper()} {path} disappeared"
    response = operation["responses"].get(status)
    assert response is not None, f"{method.upper()} {path} no longer answers {status}"
    body = response["content"]["application/json"]["schema"]
    top = _properties(openapi, body)
    for field in fields:
        if field.startswith("results[]."):
            items = _resolve(openapi, top["results"])["items"]
            assert field.split(".", 1)[1] in _properties(openapi, items), field
        else:
            assert field in top, f"{method.upper()} {path}: field {field!r} disappeared"


def test_webhook_endpoint_is_documented(openapi):
    method, path = WEBHOOK
    assert method in openapi["paths"].get(path, {})


# --- Every answer documented (issue #22 item 1) ----------------------------------------------

# Domain errors no API operation gives: staff screens, the portal and commands only.
NOT_FROM_THE_API = {
    "domain_error": "the base class",
    "ledger_imbalance": "an internal invariant (500 server_error if it ever fires)",
    "price_change_conflict": "staff: coin package prices",
    "second_approver_required": "staff: four-eyes approvals",
    "refund_limit_exceeded": "staff refunds",
    "refund_needs_finance": "staff refunds",
    "enrolment_link_refused": "staff two-factor enrolment",
    "invalid_link": "portal: e-mail links",
    "undo_refused": "portal: the payout destination undo link",
    "own_account_refused": "staff: audit of their own account",
    "payout_state_conflict": "staff: payout actions",
}


def _error_codes(openapi, response) -> list[str] | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    for part in schema.get("allOf", []):
        code = part.get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
        if "enum" in code:
            return code["enum"]
    return None


def _operations(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


def test_every_error_answer_names_its_codes(openapi):
    missing = [
        f"{method.upper()} {path} {status}"
        for path, method, operation in _operations(openapi)
        for status, response in operation["responses"].items()
        if int(status) >= 400 and not _error_codes(openapi, response)
    ]
    assert not missing, (
        "These error answers name no error.code values. List the codes the view can answer "
        "with, e.g. `**error_responses(400, {409: ['handle_taken']})` (config/openapi.py): "
        + ", ".join(missing)
    )


def test_every_operation_documents_the_answers_any_operation_can_give(openapi):
    for path, method, operation in _operations(openapi):
        statuses = set(operation["responses"])
        expected = {"400", "401", "403", "405", "406", "429"}
        if "{}" in path:
            expected.add("404")
        if operation.get("requestBody"):
            expected.add("415")
        if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
            expected.add("409")
            assert "idempotency_conflict" in _error_codes(openapi, operation["responses"]["409"])
        assert expected <= statuses, f"{method.upper()} {path}: missing {expected - statuses}"
        assert "validation_error" in _error_codes(openapi, operation["responses"]["400"])


def _domain_errors():
    import importlib
    import pkgutil

    from django.apps import apps

    from config.errors import DomainError

    for config in apps.get_app_configs():
        # Our apps only: the repository's own .venv (a fresh clone's) holds third-party apps.
        if not config.path.startswith(str(_repo())) or "site-packages" in config.path:
            continue
        for info in pkgutil.walk_packages([config.path], prefix=f"{config.name}."):
            if ".tests" in info.name or ".migrations" in info.name:
                continue
            importlib.import_module(info.name)
    importlib.import_module("accounts.lockout")
    seen, todo = set(), [DomainError]
    while todo:
        cls = todo.pop()
        seen.add(cls)
        todo += [c for c in cls.__subclasses__() if c not in seen]
    return seen


def _repo():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def test_every_domain_error_code_is_documented_where_the_api_gives_it(openapi):
    documented = {
        code
        for _path, _method, operation in _operations(openapi)
        for response in operation["responses"].values()
        for code in _error_codes(openapi, response) or []
    }
    undocumented = {
        f"{cls.code} ({cls.__module__}.{cls.__name__})"
        for cls in _domain_errors()
        if cls.code not in documented and cls.code not in NOT_FROM_THE_API
    }
    assert not undocumented, (
        "These domain errors appear in no operation's documented error.code values: add them "
        "to the error_responses() of the operations that can give them, or to "
        "NOT_FROM_THE_API here with the reason: " + ", ".join(sorted(undocumented))
    )
