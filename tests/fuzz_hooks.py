"""schemathesis hooks of the outside fuzz run (tests/test_api_outside_fuzz.py).

Loaded by the ``st`` process (``SCHEMATHESIS_HOOKS=tests.fuzz_hooks``), not by pytest. The
run's accounts come from the JSON file named by ``APPLAUSE_FUZZ_STATE``:

- every request is made as the fuzz creator (a real token, coins, a payout method), except
  the operations that end an account's state for good (becoming a creator, revoking the
  token, changing the password), which each take a fresh account of their own, so they can
  succeed again and again without locking the rest of the run out;
- a DELETE of the two webhook endpoints whose deliveries the run replays goes to a spare
  endpoint instead, so the replay can succeed until the end.

Valid ("positive") requests may break rules the schema cannot state because they depend on
the server's state: the current password, the list of common passwords, today's date. For
those cases only, the hooks put the real password in, or make a password, a date of birth or
a goal's deadline that passes; invalid ("negative") requests are left as generated.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import secrets
import threading

import schemathesis
from schemathesis import GenerationMode

with open(os.environ["APPLAUSE_FUZZ_STATE"]) as _file:
    STATE = json.load(_file)
STATE["targets"] = {tuple(k.split(" ", 1)): v for k, v in STATE["targets"].items()}

_lock = threading.Lock()
# Operation -> its own accounts ({"token", "password"}), taken in turn.
OWN_ACCOUNT = {
    ("POST", "/api/v1/creators/"): "creators",
    ("DELETE", "/api/v1/auth/token/"): "revoke",
    ("POST", "/api/v1/auth/password/"): "password",
}
_in_flight: dict[int, dict] = {}  # case -> the account it was sent as
_deletable = itertools.cycle(STATE["deletable_endpoints"])
_accounts = {name: itertools.cycle(STATE["spare"][name]) for name in set(OWN_ACCOUNT.values())}


def _positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    key = (case.method.upper(), case.operation.path)
    password = STATE["password"]
    headers = dict(case.headers or {})
    if key in OWN_ACCOUNT:
        with _lock:
            account = next(_accounts[OWN_ACCOUNT[key]])
        headers["Authorization"] = f"Token {account['token']}"
        password = account["password"]
        _in_flight[id(case)] = account
    else:
        headers["Authorization"] = f"Token {STATE['token']}"
    case.headers = headers
    if key == ("DELETE", "/api/v1/webhooks/endpoints/{endpoint_id}/"):
        given = str((case.path_parameters or {}).get("endpoint_id"))
        if given in {str(pk) for pk in STATE["protected_endpoints"]}:  # the replays' two
            with _lock:
                spare = next(_deletable)
            case.path_parameters = {**case.path_parameters, "endpoint_id": spare}
    if not _positive(case):
        replay = STATE["targets"].get(key, {}).get("path", {}) if "replay" in key[1] else {}
        given = case.path_parameters or {}
        if replay and all(isinstance(given.get(name), int) for name in replay):
            case.path_parameters = {**given, **replay}  # ids are any integer: still invalid
        return
    if key in STATE["targets"]:  # objects no other operation deletes or uses up
        case.path_parameters = {**(case.path_parameters or {}), **STATE["targets"][key]["path"]}
        if isinstance(case.body, dict):
            case.body.update(STATE["targets"][key].get("body", {}))
    gift = key == ("POST", "/api/v1/gifts/send/") and isinstance(case.body, dict)
    if gift and case.body.get("live_id") and case.body.get("video_id"):
        case.body.pop("video_id")  # one of the two (the description says so)
    if key == ("POST", "/api/v1/recharges/") and isinstance(case.body, dict):
        if "payment_method" in case.body:
            case.body["payment_method"] = "pm_card_visa"  # ids that Stripe made
        if "package" in case.body:  # ids of packages on sale (coin-packages/)
            case.body.pop("package")
            case.body["coins"] = 500
    if key == ("GET", "/api/v1/wallet/entries/") and case.query:
        case.query.pop("cursor", None)  # an opaque token that only a `next` link carries
    body = case.body
    if not isinstance(body, dict):
        return
    if key == ("PUT", "/api/v1/payouts/method/"):
        body["password"] = password
        if body.get("rail") == "manual":  # an IBAN's checksum is not a schema's business
            body["account_holder"] = (body.get("account_holder") or "").strip() or "Fuzz Tester"
            body["iban"] = STATE["iban"]
    elif key == ("POST", "/api/v1/auth/password/") and "old_password" in body:
        body["old_password"] = password
        body["new_password"] = _strong(body.get("new_password"))
    elif key == ("POST", "/api/v1/auth/register/"):
        if isinstance(body.get("password"), str):
            body["password"] = _strong(body["password"])
        born = body.get("date_of_birth")
        today = datetime.datetime.now(datetime.UTC).date()
        oldest = today.replace(year=today.year - 129).isoformat()
        if isinstance(born, str) and not oldest <= born <= today.isoformat():
            body["date_of_birth"] = "1990-01-01"  # not born yet, or older than 130
    elif key == ("POST", "/api/v1/recharges/") and ("package" in body) == ("coins" in body):
        body.pop("package", None)  # exactly one of the two (the description says so)
        body["coins"] = body.get("coins") if isinstance(body.get("coins"), int) else 500
    elif key == ("POST", "/api/v1/webhooks/endpoints/"):
        body["url"] = "https://example.com/applause"  # URL syntax: Django's, not the schema's
    elif key == ("POST", "/api/v1/creators/{handle}/memberships/") and body.get("gift_to"):
        body["gift_to"] = ["fan"]  # usernames that exist
    elif key == ("POST", "/api/v1/creators/me/goals/"):
        # 5 minutes to 90 days ahead (GOAL_DEADLINE_MIN_MINUTES / _MAX_DAYS): the clock's rule.
        tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        body["deadline"] = tomorrow.isoformat()
    elif key == ("POST", "/api/v1/auth/token/"):
        body["username"], body["password"] = STATE["username"], STATE["password"]


def _strong(password) -> str:
    """The generated password, made uncommon and unlike the username (Django's validators)."""
    return (password if isinstance(password, str) else "")[:100] + "-" + secrets.token_hex(8)


@schemathesis.hook
def after_call(ctx, case, response):
    # A changed password is the account's password from now on.
    with _lock:
        account = _in_flight.pop(id(case), None)
    changed = (case.method.upper(), case.operation.path) == ("POST", "/api/v1/auth/password/")
    body = case.body if isinstance(case.body, dict) else {}
    if changed and account is not None and response.status_code == 200:
        account["password"] = body.get("new_password", account["password"])


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    # DELETE memberships/{id}/ cancels (PRODUCT.md): the membership stays readable, with
    # status "cancelled" and its perks until current_period_end. Not a deletion.
    cancelled = "DELETE /api/v1/memberships/" in str(getattr(failure, "message", ""))
    if failure.code == "ST301" and cancelled:
        return False
    # Production refuses a webhook URL unless its host resolves to a public address: a fact
    # of the network (none here), not of the schema.
    refused = response is not None and b"webhook_url_refused" in (response.content or b"")
    return not (failure.code == "ST202" and refused)
