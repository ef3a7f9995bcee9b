"""Experiment for BENCHMARKS.md (issue #15, next step 3): the hot gift served before Django's
handler. Not part of ``make bench``, not a production change.

Run through ``scripts/with_services.sh`` (it needs ``DATABASE_URL`` and ``REDIS_URL``)::

    SECRET_KEY=x scripts/with_services.sh .venv/bin/python bench/experiment_hot_wsgi.py \
        [N] [ROUNDS]

``PreHandlerApp`` wraps ``config.wsgi.application``. For ``POST /api/v1/gifts/send/`` with
``Authorization: Token …`` it builds a ``WSGIRequest`` straight from the environ (no
``WSGIHandler``, no ``request_started``/``request_finished``, no middleware chain, no URL
resolving) and calls ``gifts.api_hot.gift_send_hot``, the view ``HotPathMiddleware`` calls
today: the same parsing, token, throttle, gift and idempotency code, nothing duplicated. It adds
the headers the middlewares in front of ``HotPathMiddleware`` would add (``X-Request-ID``, the
security headers and CSP, captured once from a Django answer). When the view returns None
(not the plain case: a bad token, say) the body it read is put back and Django answers.

It first checks that both apps answer alike (status, header names, JSON bytes) for a gift, a
402 (insufficient funds), a replayed Idempotency-Key, a 409 (same key, other body) and a bad
token, then measures process CPU per request in interleaved rounds (A, B, C, A, B, C, …) of N
gifts each, with the same setup as ``bench/hot_wsgi.py``:

- A: ``config.wsgi.application`` (the handler, middlewares, ``HotPathMiddleware``);
- B: ``PreHandlerApp`` (no signals);
- C: ``PreHandlerApp`` that also sends ``request_started``/``request_finished`` (what a
  production version needs at least for connection age: ``close_old_connections``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from hot_wsgi import gift_environ, open_bench_database  # noqa: E402  (the measured setup, shared)

SEND_PATH = "/api/v1/gifts/send/"
# Headers gifts.api_hot._respond writes itself; the rest of a Django answer comes from the
# middlewares in front of HotPathMiddleware.
HOT_VIEW_HEADERS = {
    "content-type",
    "allow",
    "vary",
    "content-length",
    "x-frame-options",
    "idempotent-replayed",
    "retry-after",
}


class PreHandlerApp:
    """A WSGI callable that serves the plain hot gift itself and passes the rest to ``app``."""

    def __init__(self, app, *, extra_headers: list[tuple[str, str]], signals: bool) -> None:
        from django.core.handlers.wsgi import WSGIRequest

        from gifts.api_hot import gift_send_hot

        self.app = app
        self.extra_headers = extra_headers
        self.signals = signals
        self.request_class = WSGIRequest
        self.view = gift_send_hot

    def __call__(self, environ, start_response):
        if (
            environ.get("PATH_INFO") != SEND_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("HTTP_AUTHORIZATION", "")[:6].lower() != "token "
        ):
            return self.app(environ, start_response)
        if self.signals:
            from django.core import signals

            signals.request_started.send(sender=self.__class__, environ=environ)
        request = self.request_class(environ)
        response = self.view(request)
        if response is None:  # not the plain case: Django answers, with the body put back
            if self.signals:
                from django.core import signals

                signals.request_finished.send(sender=self.__class__)
            if hasattr(request, "_body"):
                environ["wsgi.input"] = io.BytesIO(request._body)
            return self.app(environ, start_response)
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if 8 <= len(incoming) <= 64 else uuid.uuid4().hex  # sketch only
        headers = [*response.items(), *self.extra_headers, ("X-Request-ID", request_id)]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        if self.signals:
            return response  # its close() sends request_finished, as Django's handler does
        return [response.content]


def main() -> int:
    args = [a for a in sys.argv[1:] if a.isdigit()]
    n = int(args[0]) if args else 500
    rounds = int(args[1]) if len(args) > 1 else 6
    b, base_url, dbname = open_bench_database("exphotwsgi")
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections
        from knox.models import AuthToken

        from accounts.models import User
        from config.wsgi import application
        from wallets.services import wallet_adjust

        call_command("migrate", verbosity=0)
        senders, handles = b.seed_gift_world(20, 20)
        tokens = [AuthToken.objects.create(user=u)[1] for u in senders]
        staff = User.objects.get(username="bench-staff")
        poor = []
        for i in range(2):
            user = User.objects.create(
                username=f"bench-poor{i}", date_of_birth=dt.date(1990, 1, 1), password="!"
            )
            wallet_adjust(user=user, coins=1, reason="bench", actor=staff)
            poor.append(AuthToken.objects.create(user=user)[1])
        connections.close_all()

        def environ(token: str, body: dict, key: str) -> dict:
            return gift_environ(
                token=token, body=json.dumps(body).encode(), key=key, path=SEND_PATH
            )

        def call(app, env: dict) -> tuple[str, list[tuple[str, str]], bytes]:
            seen: dict = {}

            def start_response(status, headers, exc_info=None):
                seen.update(status=status, headers=headers)

            result = app(env, start_response)
            body = b"".join(result)
            close = getattr(result, "close", None)
            if close:
                close()
            return seen["status"], seen["headers"], body

        gift = {"creator": handles[0], "gift": b.GIFT_SLUG}

        # The outer middlewares' headers, from one Django answer on the hot path.
        status, headers, _ = call(application, environ(tokens[0], gift, uuid.uuid4().hex))
        assert status.startswith("201"), status
        extra = [
            (k, v)
            for k, v in headers
            if k.lower() not in HOT_VIEW_HEADERS and k.lower() != "x-request-id"
        ]
        apps = {
            "A django": application,
            "B pre-handler": PreHandlerApp(application, extra_headers=extra, signals=False),
            "C pre-handler+signals": PreHandlerApp(application, extra_headers=extra, signals=True),
        }
        check_same_answers(apps, call, environ, tokens, poor, gift, handles)

        def timed(app, start: int) -> float:
            cpu0 = time.process_time()
            for i in range(start, start + n):
                call(
                    app,
                    environ(
                        tokens[i % len(tokens)],
                        {"creator": handles[i % len(handles)], "gift": b.GIFT_SLUG},
                        uuid.uuid4().hex,
                    ),
                )
            return (time.process_time() - cpu0) / n * 1000

        for app in apps.values():  # warm-up
            timed(app, 0)
        results: dict[str, list[float]] = {name: [] for name in apps}
        loads = [os.getloadavg()[0]]
        for r in range(rounds):
            for name, app in apps.items():
                results[name].append(timed(app, r * n))
            loads.append(os.getloadavg()[0])
        print(
            f"{rounds} rounds x {n} gifts per app, interleaved; load average (1 min) "
            f"{min(loads):.1f}-{max(loads):.1f}"
        )
        base = statistics.mean(results["A django"])
        for name, values in results.items():
            mean = statistics.mean(values)
            print(
                f"{name:24} CPU {mean:.3f} ms/request (min {min(values):.3f}, max "
                f"{max(values):.3f}, stdev {statistics.stdev(values):.3f}); saves "
                f"{base - mean:+.3f} ms ({(base - mean) / base * 100:+.0f} %); rounds "
                + " ".join(f"{v:.2f}" for v in values)
            )
            if name != "A django":
                paired = [a - v for a, v in zip(results["A django"], values, strict=True)]
                print(
                    f"{'':24} saved per round (A minus this, same round): "
                    + " ".join(f"{d:+.2f}" for d in paired)
                )
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        b.admin_sql(base_url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def check_same_answers(apps, call, environ, tokens, poor, gift, handles) -> None:
    """Every app answers alike: status, header names and JSON bytes (ids aside for new gifts)."""
    names = list(apps)

    def same(label: str, expect: str, answers: list, *, masked: frozenset = frozenset()) -> None:
        ref_status, ref_headers, ref_body = answers[0]
        assert ref_status.startswith(expect), (label, ref_status, ref_body)
        ref_names = sorted(k.lower() for k, _ in ref_headers)
        for name, (status, headers, body) in zip(names[1:], answers[1:], strict=True):
            assert status == ref_status, (label, name, status, ref_status)
            assert sorted(k.lower() for k, _ in headers) == ref_names, (label, name, headers)
            if masked:
                one, other = json.loads(body), json.loads(ref_body)
                differ = {k for k in one.keys() | other.keys() if one.get(k) != other.get(k)}
                assert differ <= masked, (label, name, differ)
            else:
                assert body == ref_body, (label, name, body, ref_body)
        print(f"same answer from {len(answers)} apps: {label}: {ref_status} {ref_body[:90]!r}")

    # A new gift: each app for its own sender (same balance before), ids and times aside.
    fresh = [
        call(app, environ(tokens[1 + i], gift, uuid.uuid4().hex))
        for i, app in enumerate(apps.values())
    ]
    same("new gift", "201", fresh, masked=frozenset({"id", "transaction_id", "created_at"}))
    # The replayed key: every app replays one stored answer byte for byte.
    key = uuid.uuid4().hex
    first = call(apps[names[0]], environ(tokens[5], gift, key))
    replays = [call(app, environ(tokens[5], gift, key)) for app in apps.values()]
    same("replayed key", "201", replays)
    assert replays[0][2] == first[2], "a replay answers the first answer"
    assert all(("Idempotent-Replayed", "true") in r[1] for r in replays), replays
    # 409: the same key with another body.
    other = {"creator": handles[1], "gift": gift["gift"]}
    same(
        "409 other body",
        "409",
        [call(app, environ(tokens[5], other, key)) for app in apps.values()],
    )
    # 402: one coin, a gift of two.
    two = {**gift, "quantity": 2}
    same(
        "402 insufficient funds",
        "402",
        [call(app, environ(poor[0], two, uuid.uuid4().hex)) for app in apps.values()],
    )
    # 401: a bad token falls through to Django (the body is read twice).
    same(
        "401 bad token",
        "401",
        [call(app, environ("0" * 64, gift, uuid.uuid4().hex)) for app in apps.values()],
    )


if __name__ == "__main__":
    raise SystemExit(main())
