"""The OpenAPI schema's shared parts: documented errors (status and ``error.code``), tags.

Every operation documents each status it can answer and, for each error status, the
``error.code`` values it can carry (an ``enum``), so a generated client and the fuzz tests
know every answer. Views name their own statuses and codes::

    @extend_schema(responses={201: Out, **error_responses(400, {403: ["age_restricted"]})})

and ``document_errors`` (a drf-spectacular postprocessing hook) adds what every operation can
answer (400, 401, 403, 405, 406, 415, 429, 503; 404 on paths with an id; 409 with an
Idempotency-Key) and the codes DRF itself gives for each status.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import OpenApiResponse

ERROR_REF = "#/components/schemas/Error"
CODES_KEY = "x-error-codes"

ERROR_COMPONENT = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, snake_case: what went wrong, for programs.",
                },
                "message": {"type": "string", "description": "In words, for people."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "Per input field (or header), what is wrong with it.",
                },
            },
        }
    },
}

# The codes any operation can give with each status (DRF's own errors, config/api.py).
DEFAULT_CODES: dict[int, list[str]] = {
    400: ["validation_error", "malformed_request"],
    401: ["not_authenticated", "authentication_failed"],
    402: ["insufficient_funds"],
    403: ["permission_denied"],
    404: ["not_found"],
    405: ["method_not_allowed"],
    406: ["not_acceptable"],
    409: [],
    415: ["unsupported_media_type"],
    423: ["wallet_frozen"],
    429: ["throttled"],
    500: ["server_error"],
    503: ["service_busy", "database_unavailable"],
}

STATUS_TEXT = {
    400: "Invalid request",
    401: "Not authenticated",
    402: "Not enough coins",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable (ask for application/json)",
    409: "Conflict",
    415: "Unsupported media type (send application/json)",
    423: "Locked",
    429: "Too many requests (see Retry-After)",
    500: "Server error (logged; retry later)",
    502: "Payment provider error (nothing changed; retry)",
    503: "Unavailable for now: try again after Retry-After seconds",
}

# Every operation may answer these (bad input, no token, CSRF, unknown method, throttles, the
# database unavailable).
COMMON_STATUSES = (400, 401, 403, 405, 406, 429, 503)
BODY_METHODS = ("post", "put", "patch")


def error_responses(*statuses: int | dict[int, list[str]]) -> dict[int, OpenApiResponse]:
    """Documented error answers: ``error_responses(400, 401, {409: ["handle_taken"]})``.

    A plain status gets the codes DRF gives with it (``DEFAULT_CODES``); a mapping adds the
    operation's own codes to them.
    """
    codes: dict[int, list[str]] = {}
    for item in statuses:
        pairs = item.items() if isinstance(item, dict) else [(item, [])]
        for status, extra in pairs:
            codes.setdefault(status, [])
            codes[status] += [c for c in extra if c not in codes[status]]
    return {
        status: OpenApiResponse(
            {"$ref": ERROR_REF, CODES_KEY: extra}, description=STATUS_TEXT.get(status, "Error")
        )
        for status, extra in codes.items()
    }


def status_text(code: int) -> str:
    return STATUS_TEXT.get(code, "Error")


def _error_schema(codes: list[str]) -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": ERROR_REF},
            {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {"code": {"type": "string", "enum": codes}},
                    }
                },
            },
        ]
    }


def _takes_idempotency_key(operation: dict) -> bool:
    return any(
        p.get("in") == "header" and p.get("name") == "Idempotency-Key"
        for p in operation.get("parameters", [])
    )


def _document_operation(path: str, method: str, operation: dict) -> None:
    responses = operation["responses"]
    statuses = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
    statuses |= set(COMMON_STATUSES)
    if "{" in path:
        statuses.add(404)
    if method in BODY_METHODS or operation.get("requestBody"):
        statuses.add(415)
    idempotent = _takes_idempotency_key(operation)
    if idempotent:
        statuses.add(409)
    for status in sorted(statuses):
        response = responses.setdefault(
            str(status), {"description": status_text(status), "content": {}}
        )
        content = response.setdefault("content", {}).setdefault("application/json", {})
        schema = content.get("schema") or {}
        codes = list(DEFAULT_CODES.get(status, []))
        if status == 409 and idempotent:
            codes.append("idempotency_conflict")
        for code in schema.get(CODES_KEY, []):
            if code not in codes:
                codes.append(code)
        # No code named: the plain Error (tests/test_api_contract.py names the operation).
        content["schema"] = _error_schema(codes) if codes else {"$ref": ERROR_REF}
        listed = ", ".join(f"`{c}`" for c in codes)
        base = response.get("description") or status_text(status)
        if codes and "error.code" not in base:
            response["description"] = f"{base}. `error.code`: {listed}."


# OpenAPI links: what a created object's answer lets a client call next (clients and the
# stateful fuzz run follow them). (method, path, status) -> {name: (operationId, parameters)}.
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("post", "/api/v1/recharges/", "201"): {
        "GetRecharge": ("api_v1_recharges_retrieve", {"recharge_id": "$response.body#/id"}),
        "RefundRecharge": (
            "api_v1_recharges_refund_create",
            {"recharge_id": "$response.body#/id"},
        ),
    },
    ("post", "/api/v1/creators/", "201"): {
        "GetCreator": ("api_v1_creators_retrieve", {"handle": "$response.body#/handle"}),
        "GetLeaderboard": (
            "api_v1_creators_leaderboard_retrieve",
            {"handle": "$response.body#/handle"},
        ),
        "GetTiers": ("api_v1_creators_tiers_retrieve", {"handle": "$response.body#/handle"}),
    },
    ("post", "/api/v1/creators/me/tiers/", "201"): {
        "EditTier": ("api_v1_creators_me_tiers_partial_update", {"tier_id": "$response.body#/id"}),
    },
    ("post", "/api/v1/payouts/", "201"): {
        "GetStatement": ("api_v1_payouts_statement_retrieve", {"payout_id": "$response.body#/id"}),
    },
    ("post", "/api/v1/webhooks/endpoints/", "201"): {
        "GetDeliveries": (
            "api_v1_webhooks_endpoints_deliveries_retrieve",
            {"endpoint_id": "$response.body#/id"},
        ),
        "DeleteEndpoint": (
            "api_v1_webhooks_endpoints_destroy",
            {"endpoint_id": "$response.body#/id"},
        ),
    },
}


def _add_links(result: dict) -> None:
    operation_ids = {
        operation.get("operationId")
        for operations in result.get("paths", {}).values()
        for operation in operations.values()
        if isinstance(operation, dict)
    }
    for (method, path, status), links in LINKS.items():
        response = result.get("paths", {}).get(path, {}).get(method, {}).get("responses", {})
        if status not in response:
            continue
        response[status]["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in links.items()
            if target in operation_ids
        }


def document_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: every error answer of every operation, with its
    ``error.code`` values (see the module docstring)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_COMPONENT
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                _document_operation(path, method, operation)
    _add_links(result)
    return result


# Operations grouped by resource in the docs (#21, #22): the first rule whose pattern matches the
# path (after /api/v1/) names the tag. Order matters: specific before general.
RESOURCE_TAGS: list[tuple[str, str, str]] = [
    (r"^(auth/|me/$)", "auth", "Sign up, tokens, passwords and who you are."),
    (r"^wallet/", "wallet", "Your coin balance, its history and your own spending limits."),
    (
        r"^(coin-packages/|recharges/|webhooks/stripe/)",
        "recharges",
        "Buying coins with a card (Stripe), receipts, self refunds; Stripe's webhook.",
    ),
    (r"^gifts/", "gifts", "The gift catalog, the creator's share of a gift, and sending gifts."),
    (
        r"^creators/[^/]+/live/",
        "live",
        "A live stream's feed of gifts and goals, and its pinned messages.",
    ),
    (r"^creators/[^/]+/goals/", "goals", "Goals a creator sets; gifts toward them."),
    (
        r"^(creators/[^/]+/(tiers|memberships|fans)/|memberships/)",
        "memberships",
        "Creator tiers, joining and gifting memberships, fan levels and badges.",
    ),
    (
        r"^(creators/me/moderation/|messages/)",
        "moderation",
        "A creator's moderation of messages; reporting a message.",
    ),
    (r"^creators/", "creators", "Becoming a creator, profiles, leaderboards and earnings."),
    (r"^payouts/", "payouts", "Payout methods, payouts, statements and cash-outs."),
    (r"^webhooks/", "webhooks", "Your app's webhook endpoints and their deliveries."),
]


def tag_by_resource(result, generator, request, public):
    """drf-spectacular postprocessing hook: replace the default ``api`` tag with the resource's
    tag and list the tags, with their descriptions, in the docs' order."""
    rules = [(re.compile(pattern), tag) for pattern, tag, _about in RESOURCE_TAGS]
    for path, operations in result.get("paths", {}).items():
        tail = path.split("/api/v1/", 1)[-1]
        tag = next((tag for pattern, tag in rules if pattern.search(tail)), None)
        if tag is None:
            continue
        for operation in operations.values():
            if isinstance(operation, dict) and operation.get("tags", ["api"]) == ["api"]:
                operation["tags"] = [tag]
    result["tags"] = [{"name": tag, "description": about} for _p, tag, about in RESOURCE_TAGS]
    return result
