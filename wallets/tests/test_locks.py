"""The session advisory locks' own connection (wallets/services/locks.py, #23): one per
holder, closed when the holder is done, never the thread's Django connection."""

import pytest
from django.db import connection

from wallets.services.locks import session_lock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's (SQLite: always held)")


def _sessions() -> int:
    """Backends connected to the test database (ours and the lock connections)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend'"
        )
        return cursor.fetchone()[0]


def _lock_holders() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
        )
        return {row[0] for row in cursor.fetchall()}


def test_each_holder_has_a_connection_of_its_own_closed_when_it_is_done():
    before = _sessions()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_pid = cursor.fetchone()[0]
    with session_lock("test:a") as first:
        assert first
        with session_lock("test:b") as second:
            assert second
            holders = _lock_holders()
            assert len(holders) == 2
            assert own_pid not in holders
            assert _sessions() == before + 2
            # Not re-entrant: a third holder of "test:a" is another session, refused.
            with session_lock("test:a") as again:
                assert not again
        assert _sessions() == before + 1
    assert _sessions() == before
    assert _lock_holders() == set()


def _fail_holding(name: str) -> None:
    with session_lock(name) as held:
        assert held
        raise RuntimeError("the holder failed")


def test_an_error_inside_releases_the_lock():
    with pytest.raises(RuntimeError, match="the holder failed"):
        _fail_holding("test:a")
    with session_lock("test:a") as held:
        assert held
