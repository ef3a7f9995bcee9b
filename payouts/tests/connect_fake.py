"""TEST DOUBLE: a tiny HTTP fake of the Stripe Connect endpoints localstripe lacks.

Speaks Stripe's wire format (form-encoded requests, JSON objects and errors) so the real
``stripe`` client drives it through ``STRIPE_CONNECT_API_BASE``. It covers only what payouts
use: Accounts create/retrieve, AccountLinks create, Transfers create/retrieve/list, with
Stripe's idempotency-key replay. Failure injection for tests:

- ``fail_next_transfers(n, mode)``: ``"500"`` answers a 500 without doing anything;
  ``"drop"`` creates the transfer and then drops the connection (the answer is lost).
- ``transfer_delay``: seconds each transfer create takes (to kill a worker mid-batch).
- an account with ``payouts_enabled`` false refuses transfers (a permanent rail error).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


def _nest(pairs: list[tuple[str, str]]) -> dict:
    """``metadata[payout_id]=1`` → ``{"metadata": {"payout_id": "1"}}`` (Stripe's encoding)."""
    out: dict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class ConnectFake:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.accounts: dict[str, dict] = {}
        self.transfers: dict[str, dict] = {}
        self.idempotent: dict[str, tuple[str, int, dict]] = {}  # key -> (body, status, answer)
        self.transfer_creates_per_key: Counter[str] = Counter()
        self.transfer_requests = 0
        self.failures: list[str] = []
        self.transfer_delay = 0.0
        self.accounts_enabled = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}"

    def start(self) -> ConnectFake:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- test controls ------------------------------------------------------------------------
    def fail_next_transfers(self, count: int, mode: str = "500") -> None:
        with self.lock:
            self.failures += [mode] * count

    def add_account(self, *, payouts_enabled: bool = True) -> str:
        with self.lock:
            account_id = f"acct_fake{next(self.ids):06d}"
            self.accounts[account_id] = self._account(account_id, payouts_enabled)
        return account_id

    def set_payouts_enabled(self, account_id: str, enabled: bool) -> None:
        with self.lock:
            self.accounts[account_id]["payouts_enabled"] = enabled
            self.accounts[account_id]["charges_enabled"] = enabled

    def add_transfer(self, **fields) -> dict:
        """A transfer made behind our back (reconciliation tests)."""
        with self.lock:
            transfer = self._transfer(fields)
            self.transfers[transfer["id"]] = transfer
        return transfer

    def reverse_transfer(self, transfer_id: str) -> None:
        with self.lock:
            self.transfers[transfer_id]["reversed"] = True
            self.transfers[transfer_id]["amount_reversed"] = self.transfers[transfer_id]["amount"]

    def transfers_for_payout(self, payout_id: int) -> list[dict]:
        with self.lock:
            return [
                t
                for t in self.transfers.values()
                if t["metadata"].get("payout_id") == str(payout_id)
            ]

    # -- objects ------------------------------------------------------------------------------
    def _account(self, account_id: str, enabled: bool) -> dict:
        return {
            "id": account_id,
            "object": "account",
            "type": "express",
            "payouts_enabled": enabled,
            "charges_enabled": enabled,
            "details_submitted": enabled,
            "metadata": {},
        }

    def _transfer(self, params: dict) -> dict:
        transfer_id = f"tr_fake{next(self.ids):06d}"
        return {
            "id": transfer_id,
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

    # -- HTTP ---------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("Request-Id", f"req_fake{next(fake.ids)}")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                # The client may have been killed mid-request (crash tests).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)

            def _error(self, status: int, message: str, *, code: str = "", kind: str = "") -> None:
                kind = kind or ("api_error" if status >= 500 else "invalid_request_error")
                self._send(status, {"error": {"type": kind, "message": message, "code": code}})

            def do_GET(self):
                parts = urlsplit(self.path)
                query = _nest(parse_qsl(parts.query))
                path = parts.path.rstrip("/")
                if path.startswith("/v1/accounts/"):
                    account = fake.accounts.get(path.rsplit("/", 1)[1])
                    if account is None:
                        return self._error(404, "No such account", code="resource_missing")
                    return self._send(200, account)
                if path == "/v1/transfers":
                    return self._send(200, fake._list_transfers(query))
                if path.startswith("/v1/transfers/"):
                    transfer = fake.transfers.get(path.rsplit("/", 1)[1])
                    if transfer is None:
                        return self._error(404, "No such transfer", code="resource_missing")
                    return self._send(200, transfer)
                return self._error(404, f"Unrecognized request URL (GET: {path})")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                params = _nest(parse_qsl(body, keep_blank_values=True))
                path = urlsplit(self.path).path.rstrip("/")
                key = self.headers.get("Idempotency-Key")
                if path == "/v1/transfers":
                    return self._create_transfer(key, body, params)
                with fake.lock:
                    if key and key in fake.idempotent:
                        _body, status, answer = fake.idempotent[key]
                        return self._send(status, answer, {"Idempotent-Replayed": "true"})
                    if path == "/v1/accounts":
                        account_id = f"acct_fake{next(fake.ids):06d}"
                        account = fake._account(account_id, fake.accounts_enabled)
                        account["metadata"] = params.get("metadata", {})
                        account["email"] = params.get("email")
                        fake.accounts[account_id] = account
                        answer = account
                    elif path == "/v1/account_links":
                        if params.get("account") not in fake.accounts:
                            return self._error(400, "No such account", code="resource_missing")
                        answer = {
                            "object": "account_link",
                            "url": f"{fake.url}/onboarding/{params['account']}",
                            "created": int(time.time()),
                            "expires_at": int(time.time()) + 300,
                        }
                    else:
                        return self._error(404, f"Unrecognized request URL (POST: {path})")
                    if key:
                        fake.idempotent[key] = (body, 200, answer)
                return self._send(200, answer)

            def _create_transfer(self, key, body, params):
                with fake.lock:
                    fake.transfer_requests += 1
                    failure = fake.failures.pop(0) if fake.failures else None
                    if failure == "500":
                        return self._error(500, "Injected failure before processing")
                    if key and key in fake.idempotent:
                        first_body, status, answer = fake.idempotent[key]
                        if first_body != body:
                            return self._error(
                                400,
                                "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with.",
                                kind="idempotency_error",
                            )
                        replay = True
                    else:
                        replay = False
                        account = fake.accounts.get(params.get("destination", ""))
                        if account is None:
                            status, answer = (
                                400,
                                {
                                    "error": {
                                        "type": "invalid_request_error",
                                        "code": "resource_missing",
                                        "message": "No such destination account",
                                    }
                                },
                            )
                        elif not account["payouts_enabled"]:
                            status, answer = (
                                400,
                                {
                                    "error": {
                                        "type": "invalid_request_error",
                                        "code": "account_invalid",
                                        "message": "The destination account cannot receive "
                                        "transfers.",
                                    }
                                },
                            )
                        else:
                            answer = fake._transfer(params)
                            status = 200
                            fake.transfers[answer["id"]] = answer
                            fake.transfer_creates_per_key[key or answer["id"]] += 1
                        if key:
                            fake.idempotent[key] = (body, status, answer)
                if not replay and fake.transfer_delay:
                    time.sleep(fake.transfer_delay)
                if failure == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                headers = {"Idempotent-Replayed": "true"} if replay else {}
                return self._send(status, answer, headers)

        return Handler

    def _list_transfers(self, query: dict) -> dict:
        with self.lock:
            transfers = sorted(self.transfers.values(), key=lambda t: t["id"], reverse=True)
        if group := query.get("transfer_group"):
            transfers = [t for t in transfers if t["transfer_group"] == group]
        created = query.get("created")
        if isinstance(created, dict) and "gte" in created:
            transfers = [t for t in transfers if t["created"] >= int(created["gte"])]
        if after := query.get("starting_after"):
            ids = [t["id"] for t in transfers]
            transfers = transfers[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit", 10))
        return {
            "object": "list",
            "url": "/v1/transfers",
            "has_more": len(transfers) > limit,
            "data": transfers[:limit],
        }
