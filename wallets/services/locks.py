"""Session advisory locks: one runner at a time for a batch, a reconciliation or a recharge's
Stripe calls, without a table, held across transactions.

Such a lock lives on a PostgreSQL *session*, so it cannot live on Django's connection when
that connection goes through PgBouncer in transaction pooling: there the lock would be taken
on whichever server connection PgBouncer lends for that one statement, the unlock would land
on another, and a lock left behind would stay on a pooled server connection that is lent to
someone else (#23). So each holder opens a connection of its own for the lock
(``DATABASES["locks"]``: ``DATABASE_DIRECT_URL``, by default ``DATABASE_URL``), straight to
PostgreSQL or through a PgBouncer pool in *session* mode, and closes it when done.

Why a connection per holder and not lease rows (``name, holder, expires_at`` renewed by a
heartbeat): the lock keeps exactly PostgreSQL's guarantees. It is exclusive; a holder that
dies (SIGKILL, OOM, a lost host once TCP keepalive notices) closes its socket and PostgreSQL
drops the lock at once, with no expiry to wait out; a stalled holder (a long Stripe timeout,
a GC pause) never loses it to an expired lease while it still works, so no fencing token is
needed; nothing is written per purchase. The cost is one short-lived connection per holder:
one per payout batch or reconciliation run, and one per purchase or self refund while it
talks to Stripe (size ``max_connections`` for them; docs/operations.md). Why not one lock
connection per process or thread: an idle one per web thread would undo the pooling, and a
per-holder connection is never shared between threads (gunicorn's gthread workers) or
between nested holders (reconciliation finishing an abandoned recharge holds two locks).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, Error, connection, connections
from django.db.utils import load_backend

log = logging.getLogger(__name__)

# The alias of the lock connection's settings (config/settings.py); a test mirror of
# "default", so tests lock inside the test database.
LOCKS_ALIAS = "locks"


def lock_key(name: str) -> int:
    """The 64-bit advisory lock key of a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def session_lock(name: str, *, wait: float = 0.0) -> Iterator[bool]:
    """A PostgreSQL session advisory lock on a connection of its own (see above): yields
    whether it is held, after trying for up to ``wait`` seconds (0: one try).

    SQLite (``make run``'s default) has one writer at a time anyway: always yields True.
    A lock connection that cannot be opened raises Django's ``OperationalError`` (503
    ``database_unavailable`` in a request; a task retries).
    """
    if connection.vendor != "postgresql":
        yield True
        return
    key = lock_key(name)
    alias = LOCKS_ALIAS if LOCKS_ALIAS in settings.DATABASES else DEFAULT_DB_ALIAS
    db = dict(connections.settings[alias])
    # A new wrapper, not a thread's cached one: this holder's and no one else's, closed below
    # (under an alias of its own, as Django's tests allow such one-off connections).
    session = load_backend(db["ENGINE"]).DatabaseWrapper(db, alias=f"{alias}-holder")
    acquired = False
    try:
        deadline = time.monotonic() + wait
        while True:
            with session.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
                acquired = bool(cursor.fetchone()[0])
            if acquired or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        yield acquired
    finally:
        # Closing the session drops its locks; the unlock first also covers a lock connection
        # that goes through a PgBouncer session pool whose server_reset_query is empty.
        if session.connection is not None:
            try:
                with session.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock_all()")
            except Error as exc:
                # The lock session ended under its holder (a PostgreSQL crash or restart): the
                # lock went with it and another runner may have started meanwhile. The work
                # it guards is safe to run twice (idempotency keys, unique rows): the lock
                # saves doing it twice. Said in the log, for the operator.
                if acquired:
                    log.warning("lock %s: its connection ended while held (%s)", name, exc)
        try:
            session.close()
        except Error:
            log.warning("lock %s: closing its connection failed (the lock went with it)", name)


@contextmanager
def advisory_lock(name: str) -> Iterator[bool]:
    """One runner at a time (the payout batch, a reconciliation): tried without waiting,
    yields whether we hold it."""
    with session_lock(name) as acquired:
        yield acquired
