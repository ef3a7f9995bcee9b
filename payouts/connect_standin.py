"""A local stand-in for Stripe Connect: the calls the payout rail makes, over Stripe's HTTP API.

localstripe (the offline Stripe of ``make run`` and the tests) has no Connect. This small
server speaks Stripe's wire format (form-encoded requests, JSON objects and errors, the
``Idempotency-Key`` replay) for what payouts use (payouts/rails.py): Accounts create and
retrieve, AccountLinks create, Transfers create/retrieve/list, and Payouts create/list on a
connected account (``Stripe-Account``). It also serves the pretend onboarding an account
link points to: a page with one button that makes the account able to receive transfers and
goes back to the link's ``return_url``.

- ``make run`` starts it (scripts/run.py): ``python -m payouts.connect_standin --port 8421
  --state var/connect.json --onboarding``. Accounts start without payouts until their
  onboarding is finished; the state file keeps accounts and transfers across restarts.
- The tests use it in-process (``payouts/tests/connect_fake.py``), with failure injection:
  ``fail_next_transfers(n, mode)`` (``"500"`` answers a 500 doing nothing; ``"drop"`` makes
  the transfer and drops the connection), ``transfer_delay`` (seconds per transfer create),
  and an account with ``payouts_enabled`` false refuses transfers.

Stdlib only; never used in production (``STRIPE_CONNECT_API_BASE`` is Stripe's API there).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import signal
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Obj = dict[str, Any]  # a Stripe object, as JSON


def _nest(pairs: list[tuple[str, str]]) -> Obj:
    """``metadata[payout_id]=1`` → ``{"metadata": {"payout_id": "1"}}`` (Stripe's encoding)."""
    out: Obj = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class ConnectStandIn:
    """The server and its state. ``accounts_enabled``: new accounts can receive transfers at
    once (the tests' default); False: only after their onboarding is finished."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        accounts_enabled: bool = True,
        state_file: Path | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.next_id = 1
        self.accounts: dict[str, Obj] = {}
        self.links: dict[str, str] = {}  # account id -> the return_url of its last link
        self.transfers: dict[str, Obj] = {}
        self.payouts: dict[str, Obj] = {}
        self.idempotent: dict[str, tuple[str, int, Obj]] = {}  # key -> (body, status, answer)
        self.transfer_creates_per_key: Counter[str] = Counter()
        self.transfer_requests = 0
        self.failures: list[str] = []
        self.transfer_delay = 0.0
        self.accounts_enabled = accounts_enabled
        self.state_file = state_file
        self._load()
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ConnectStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- state file ---------------------------------------------------------------------------
    _SAVED = ("next_id", "accounts", "links", "transfers", "payouts", "idempotent")

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.is_file():
            return
        data = json.loads(self.state_file.read_text())
        for name in self._SAVED:
            if name in data:
                value = data[name]
                if name == "idempotent":
                    value = {key: tuple(entry) for key, entry in value.items()}
                setattr(self, name, value)

    def _save(self) -> None:
        """Under ``self.lock``: write the state (a temp file renamed over the old one)."""
        if self.state_file is None:
            return
        data = {name: getattr(self, name) for name in self._SAVED}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state_file)

    def _new_id(self, prefix: str) -> str:
        number = self.next_id
        self.next_id += 1
        return f"{prefix}_fake{number:06d}"

    # -- test controls ------------------------------------------------------------------------
    def fail_next_transfers(self, count: int, mode: str = "500") -> None:
        with self.lock:
            self.failures += [mode] * count

    def add_account(self, *, payouts_enabled: bool = True) -> str:
        with self.lock:
            account_id = self._new_id("acct")
            self.accounts[account_id] = self._account(account_id, payouts_enabled)
            self._save()
        return account_id

    def set_payouts_enabled(self, account_id: str, enabled: bool) -> None:
        with self.lock:
            self.accounts[account_id]["payouts_enabled"] = enabled
            self.accounts[account_id]["charges_enabled"] = enabled
            self.accounts[account_id]["details_submitted"] = enabled
            self._save()

    def add_transfer(self, **fields: Any) -> Obj:
        """A transfer made behind our back (reconciliation tests)."""
        with self.lock:
            transfer = self._transfer(fields)
            self.transfers[transfer["id"]] = transfer
            self._save()
        return transfer

    def reverse_transfer(self, transfer_id: str) -> None:
        with self.lock:
            self.transfers[transfer_id]["reversed"] = True
            self.transfers[transfer_id]["amount_reversed"] = self.transfers[transfer_id]["amount"]
            self._save()

    def transfers_for_payout(self, payout_id: int) -> list[Obj]:
        with self.lock:
            return [
                t
                for t in self.transfers.values()
                if t["metadata"].get("payout_id") == str(payout_id)
            ]

    # -- objects ------------------------------------------------------------------------------
    def _account(self, account_id: str, enabled: bool) -> Obj:
        return {
            "id": account_id,
            "object": "account",
            "type": "express",
            "payouts_enabled": enabled,
            "charges_enabled": enabled,
            "details_submitted": enabled,
            "metadata": {},
        }

    def _transfer(self, params: Obj) -> Obj:
        return {
            "id": self._new_id("tr"),
            "object": "transfer",
            "amount": int(params["amount"]),
            "amount_reversed": 0,
            "currency": str(params.get("currency", "usd")).lower(),
            "destination": params.get("destination", ""),
            "transfer_group": params.get("transfer_group"),
            "metadata": params.get("metadata", {}),
            "reversed": False,
            "created": int(params.get("created", time.time())),
            "livemode": False,
        }

    def _list(self, url: str, objects: list[Obj], query: Obj) -> Obj:
        objects = sorted(objects, key=lambda o: o["id"], reverse=True)
        created = query.get("created")
        if isinstance(created, dict) and "gte" in created:
            objects = [o for o in objects if o["created"] >= int(created["gte"])]
        if after := query.get("starting_after"):
            ids = [o["id"] for o in objects]
            objects = objects[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit", 10))
        return {
            "object": "list",
            "url": url,
            "has_more": len(objects) > limit,
            "data": objects[:limit],
        }

    def _list_transfers(self, query: Obj) -> Obj:
        with self.lock:
            transfers = list(self.transfers.values())
        if group := query.get("transfer_group"):
            transfers = [t for t in transfers if t["transfer_group"] == group]
        if destination := query.get("destination"):
            transfers = [t for t in transfers if t["destination"] == destination]
        return self._list("/v1/transfers", transfers, query)

    def _balance_minor(self, account_id: str, currency: str) -> int:
        """What a connected account holds in one currency: transfers in, minus payouts out."""
        received: int = sum(
            t["amount"] - t["amount_reversed"]
            for t in self.transfers.values()
            if t["destination"] == account_id and t["currency"] == currency
        )
        paid: int = sum(
            p["amount"]
            for p in self.payouts.values()
            if p["account"] == account_id and p["currency"] == currency
        )
        return received - paid

    # -- HTTP ---------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _raw(self, status: int, raw: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                # The client may have been killed mid-request (crash tests).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)

            def _send(self, status: int, body: Obj, headers: dict[str, str] | None = None) -> None:
                with standin.lock:
                    request_id = standin._new_id("req")
                headers = {
                    "Content-Type": "application/json",
                    "Request-Id": request_id,
                    **(headers or {}),
                }
                self._raw(status, json.dumps(body).encode(), headers)

            def _error(self, status: int, message: str, *, code: str = "", kind: str = "") -> None:
                kind = kind or ("api_error" if status >= 500 else "invalid_request_error")
                self._send(status, {"error": {"type": kind, "message": message, "code": code}})

            def _form(self) -> tuple[str, Obj]:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                return body, _nest(parse_qsl(body, keep_blank_values=True))

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = _nest(parse_qsl(parts.query))
                path = parts.path.rstrip("/")
                if path.startswith("/onboarding/"):
                    return self._onboarding_page(path.rsplit("/", 1)[1])
                if path.startswith("/v1/accounts/"):
                    account = standin.accounts.get(path.rsplit("/", 1)[1])
                    if account is None:
                        return self._error(404, "No such account", code="resource_missing")
                    return self._send(200, account)
                if path == "/v1/transfers":
                    return self._send(200, standin._list_transfers(query))
                if path.startswith("/v1/transfers/"):
                    transfer = standin.transfers.get(path.rsplit("/", 1)[1])
                    if transfer is None:
                        return self._error(404, "No such transfer", code="resource_missing")
                    return self._send(200, transfer)
                if path == "/v1/payouts":
                    owner = self.headers.get("Stripe-Account", "")
                    with standin.lock:
                        mine = [p for p in standin.payouts.values() if p["account"] == owner]
                    return self._send(200, standin._list("/v1/payouts", mine, query))
                return self._error(404, f"Unrecognized request URL (GET: {path})")

            def do_POST(self) -> None:
                body, params = self._form()
                path = urlsplit(self.path).path.rstrip("/")
                key = self.headers.get("Idempotency-Key")
                if path.startswith("/onboarding/"):
                    return self._onboarding_done(path.rsplit("/", 1)[1])
                if path == "/v1/transfers":
                    return self._create_transfer(key, body, params)
                with standin.lock:
                    if key and key in standin.idempotent:
                        _body, status, answer = standin.idempotent[key]
                        return self._send(status, answer, {"Idempotent-Replayed": "true"})
                    if path == "/v1/accounts":
                        account_id = standin._new_id("acct")
                        account = standin._account(account_id, standin.accounts_enabled)
                        account["metadata"] = params.get("metadata", {})
                        account["email"] = params.get("email")
                        standin.accounts[account_id] = account
                        status, answer = 200, account
                    elif path == "/v1/account_links":
                        account_id = params.get("account", "")
                        if account_id not in standin.accounts:
                            return self._error(400, "No such account", code="resource_missing")
                        standin.links[account_id] = params.get("return_url", "")
                        status, answer = (
                            200,
                            {
                                "object": "account_link",
                                "url": f"{standin.url}/onboarding/{account_id}",
                                "created": int(time.time()),
                                "expires_at": int(time.time()) + 300,
                            },
                        )
                    elif path == "/v1/payouts":
                        status, answer = standin._create_payout(
                            self.headers.get("Stripe-Account", ""), params
                        )
                    else:
                        return self._error(404, f"Unrecognized request URL (POST: {path})")
                    if key:
                        standin.idempotent[key] = (body, status, answer)
                    standin._save()
                return self._send(status, answer)

            # -- the pretend onboarding (a browser, not the Stripe client) ---------------------
            def _onboarding_page(self, account_id: str) -> None:
                account = standin.accounts.get(account_id)
                if account is None:
                    return self._raw(404, b"No such account", {"Content-Type": "text/plain"})
                done = "already finished" if account["payouts_enabled"] else "not finished yet"
                page = (
                    "<!doctype html><html lang=en><meta charset=utf-8>"
                    "<title>Stripe Connect onboarding (local stand-in)</title>"
                    "<body style='font-family:sans-serif;max-width:36em;margin:3em auto'>"
                    "<h1>Stripe Connect onboarding</h1>"
                    "<p>A local stand-in for Stripe's onboarding: nothing is checked and no "
                    f"money moves. Account <code>{html.escape(account_id)}</code>: {done}.</p>"
                    f"<form method=post action='/onboarding/{html.escape(account_id)}'>"
                    "<button type=submit>Finish onboarding</button></form></body></html>"
                )
                self._raw(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

            def _onboarding_done(self, account_id: str) -> None:
                with standin.lock:
                    account = standin.accounts.get(account_id)
                    if account is None:
                        return self._raw(404, b"No such account", {"Content-Type": "text/plain"})
                    for name in ("payouts_enabled", "charges_enabled", "details_submitted"):
                        account[name] = True
                    back = standin.links.get(account_id) or "/"
                    standin._save()
                self._raw(303, b"", {"Location": back})

            def _create_transfer(self, key: str | None, body: str, params: Obj) -> None:
                with standin.lock:
                    standin.transfer_requests += 1
                    failure = standin.failures.pop(0) if standin.failures else None
                    if failure == "500":
                        return self._error(500, "Injected failure before processing")
                    replay = False
                    if key and key in standin.idempotent:
                        replay = True
                        first_body, status, answer = standin.idempotent[key]
                        if first_body != body:
                            return self._error(
                                400,
                                "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with.",
                                kind="idempotency_error",
                            )
                    else:
                        status, answer = standin._make_transfer(key, params)
                        if key:
                            standin.idempotent[key] = (body, status, answer)
                        standin._save()
                if not replay and standin.transfer_delay:
                    time.sleep(standin.transfer_delay)
                if failure == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                headers = {"Idempotent-Replayed": "true"} if replay else {}
                return self._send(status, answer, headers)

        return Handler

    def _refusal(self, code: str, message: str) -> tuple[int, Obj]:
        return 400, {"error": {"type": "invalid_request_error", "code": code, "message": message}}

    def _make_transfer(self, key: str | None, params: Obj) -> tuple[int, Obj]:
        """Under ``self.lock``: a new transfer, or Stripe's refusal."""
        account = self.accounts.get(params.get("destination", ""))
        if account is None:
            return self._refusal("resource_missing", "No such destination account")
        if not account["payouts_enabled"]:
            return self._refusal(
                "account_invalid", "The destination account cannot receive transfers."
            )
        transfer = self._transfer(params)
        self.transfers[transfer["id"]] = transfer
        self.transfer_creates_per_key[key or transfer["id"]] += 1
        return 200, transfer

    def _create_payout(self, account_id: str, params: Obj) -> tuple[int, Obj]:
        """Under ``self.lock``: money from a connected account to its (pretend) bank."""
        if account_id not in self.accounts:
            return self._refusal("resource_missing", "No such account (Stripe-Account)")
        currency = str(params.get("currency", "usd")).lower()
        try:
            amount = int(params.get("amount", ""))
        except ValueError:
            return self._refusal("parameter_invalid_integer", "Invalid integer: amount")
        if amount <= 0 or amount > self._balance_minor(account_id, currency):
            return self._refusal("balance_insufficient", "Insufficient funds in the account")
        payout: Obj = {
            "id": self._new_id("po"),
            "object": "payout",
            "account": account_id,
            "amount": amount,
            "currency": currency,
            "status": "paid",
            "arrival_date": int(time.time()),
            "created": int(time.time()),
            "livemode": False,
        }
        self.payouts[payout["id"]] = payout
        return 200, payout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8421)
    parser.add_argument("--state", type=Path, help="keep accounts and transfers in this file")
    parser.add_argument(
        "--onboarding",
        action="store_true",
        help="new accounts receive transfers only after their onboarding page is finished",
    )
    args = parser.parse_args(argv)
    standin = ConnectStandIn(
        host=args.host, port=args.port, accounts_enabled=not args.onboarding, state_file=args.state
    )
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    standin.start()
    print(f"Stripe Connect stand-in listening on {standin.url}", flush=True)
    stopped.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
