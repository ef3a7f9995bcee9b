"""The session advisory locks' own connection (wallets/services/locks.py, #23): one per
holder, closed when the holder is done, never the thread's Django connection."""

import time

import pytest
from django.db import connection

from wallets.services.locks import session_lock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's (SQLite: always held)")


def _still_connected(pids: set[int]) -> set[int]:
    """Those of ``pids`` whose backend has not ended within 10 s (a closed connection's
    backend leaves pg_stat_activity a moment after the client's goodbye)."""
    deadline = time.monotonic() + 10
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)])
            left = {row[0] for row in cursor.fetchall()}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _lock_holders() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
        )
        return {row[0] for row in cursor.fetchall()}


def test_each_holder_has_a_connection_of_its_own_closed_when_it_is_done():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_pid = cursor.fetchone()[0]
    with session_lock("test:a") as first:
        assert first
        (first_pid,) = _lock_holders()
        with session_lock("test:b") as second:
            assert second
            holders = _lock_holders()
            assert len(holders) == 2
            assert own_pid not in holders
            # Not re-entrant: a third holder of "test:a" is another session, refused.
            with session_lock("test:a") as again:
                assert not again
        assert _lock_holders() == {first_pid}
        assert _still_connected(holders - {first_pid}) == set()
    assert _lock_holders() == set()
    assert _still_connected(holders) == set()


def _fail_holding(name: str) -> None:
    with session_lock(name) as held:
        assert held
        raise RuntimeError("the holder failed")


def test_an_error_inside_releases_the_lock():
    with pytest.raises(RuntimeError, match="the holder failed"):
        _fail_holding("test:a")
    with session_lock("test:a") as held:
        assert held


def test_a_lock_session_that_ends_under_its_holder_is_logged_not_raised(caplog):
    with session_lock("test:a") as held:
        assert held
        (holder,) = _lock_holders()
        with connection.cursor() as cursor:  # a PostgreSQL restart, for this one session
            cursor.execute("SELECT pg_terminate_backend(%s)", [holder])
        assert _still_connected({holder}) == set()
        # Gone with its session: another runner may take it now.
        with session_lock("test:a") as other:
            assert other
    assert "lock test:a: its connection ended while held" in caplog.text
