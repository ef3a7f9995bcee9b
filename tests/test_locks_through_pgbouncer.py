"""The app's session advisory locks through a real PgBouncer (#23, #15 item 4).

In transaction pooling, two processes (``tests/lock_child.py``) run the app with
``DATABASE_URL`` pointing at a PgBouncer in front of the test database, with ONE server
connection in its pool, so both processes' queries run on the same PostgreSQL session one
transaction after the other; the lock connection (``DATABASE_DIRECT_URL``) goes straight to
PostgreSQL. Before the locks had a connection of their own, a lock taken through transaction
pooling stayed on that shared server connection: the second process then "held" the first
one's lock too (a second payout batch beside the first), and the unlock of one landed on the
other's session. The same checks run through session pooling, with the lock connections
through PgBouncer as well.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from tests.helpers import LineChild, postgres_url
from tests.pgbouncer import PgBouncer, pgbouncer_binary

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class Child(LineChild):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__("tests.lock_child", env, timeout=60)
        assert self.read_line().strip() == "ready"

    def __call__(self, command: str) -> str:
        return self.send_line(command).strip()


def advisory_locks_held() -> int:
    """Advisory locks held on the test database, by anyone (pooled server connections too)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
        )
        return cursor.fetchone()[0]


@pytest.fixture(params=["transaction", "session"])
def children(request):
    """Transaction pooling with one server connection and the lock connections straight to
    PostgreSQL (``DATABASE_DIRECT_URL``), as docs/operations.md says; or session pooling
    (``DISCARD ALL``) with the lock connections through it too (``DATABASE_DIRECT_URL``
    unset), the other documented way."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed (scripts/with_services.sh installs it)")
    mode = request.param
    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)
    # Session pooling lends a server connection per client connection: room for both
    # processes' connections and their lock connections.
    pool = 1 if mode == "transaction" else 8
    with PgBouncer(host=host, port=port, user=db["USER"], mode=mode, pool=pool) as bouncer:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER",)}
        env.pop("DATABASE_DIRECT_URL", None)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            APPLAUSE_TESTING="1",
            DATABASE_URL=postgres_url(host="127.0.0.1", port=bouncer.port, settings_dict=db),
            CONN_MAX_AGE="60",
        )
        if mode == "transaction":
            env["DATABASE_DIRECT_URL"] = postgres_url(host=host, port=port, settings_dict=db)
        made: list[Child] = []
        try:
            made += [Child(env), Child(env)]
            yield made
        finally:
            for child in made:
                child.close()


def test_session_locks_through_pgbouncer(children):
    first, second = children

    # (a) One payout batch / reconciliation at a time: the second refuses while the first
    # holds the lock, though both reach PostgreSQL through the same pooled server connection.
    assert first("hold applause:payouts:batch 0") == "held"
    assert first("hold applause:reconcile:payouts 0") == "held"
    assert first("hold applause:reconcile:payments 0") == "held"
    assert advisory_locks_held() == 3
    assert second("batch") == "skipped"
    assert second("reconcile_payouts") == "skipped"
    assert second("reconcile_payments") == "skipped"
    assert second("hold applause:payouts:batch 0.2") == "refused"

    # (b) Released when the holder finishes: the next run goes ahead, and nothing is left
    # behind on PgBouncer's server connection.
    assert first("release") == "released"
    assert advisory_locks_held() == 0
    assert second("batch") == "ran"
    assert second("reconcile_payouts") == "ran"
    assert advisory_locks_held() == 0

    # (c) One process at a time drives a recharge's Stripe calls.
    assert first("recharge 4242 0") == "held"
    assert second("recharge 4242 0.2") == "refused"
    assert second("recharge 4243 0") == "held"  # another recharge is not held up
    assert first("release") == "released"
    assert second("recharge 4242 0") == "held"
    assert second("release") == "released"
    assert advisory_locks_held() == 0

    # (b) Released when the holder's process is killed: PostgreSQL ends its lock session as
    # soon as the socket closes (the second waits up to 10 s for it; it takes milliseconds).
    assert first("hold applause:payouts:batch 0") == "held"
    assert first("recharge 4242 0") == "held"
    assert second("recharge 4242 0") == "refused"
    first.kill()
    assert second("hold applause:payouts:batch 10") == "held"
    assert second("recharge 4242 10") == "held"
    assert second("release") == "released"
    assert advisory_locks_held() == 0
