"""One migrated test database per run, cloned by every pytest-xdist worker (#17).

pytest-django lets each xdist worker create its own test database by running every migration
(~9 s of a 2-core machine per worker, and the workers start together). Here the first worker
to arrive builds a template database from the migrations, once, under a file lock; every
worker, the first included, then copies it with PostgreSQL's ``CREATE DATABASE ... TEMPLATE``
(a file copy: a fraction of a second). The copy is the migrated database exactly: tables,
sequences, the ledger's and the audit log's triggers, the gift functions and the rows the
``post_migrate`` hooks write (content types, permissions, staff roles).

``conftest.py``'s ``django_db_setup`` uses this only for an xdist worker on PostgreSQL with
migrations and without ``--reuse-db``; anything else takes pytest-django's own path.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection, connections


@contextmanager
def _run_lock(run_id: str) -> Iterator[None]:
    # xdist gives every worker of one run the same testrunuid; parallel runs lock apart.
    # scripts/with_services.sh's directory when there is one (it removes it at the end).
    directory = os.environ.get("APPLAUSE_SERVICES_DIR") or tempfile.gettempdir()
    path = Path(directory) / f"applause-test-db-{run_id}.lock"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _database_exists(name: str) -> bool:
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


def _execute_nodb(sql: str) -> None:
    with connection._nodb_cursor() as cursor:
        cursor.execute(sql)


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _template_name(run_id: str) -> str:
    # PostgreSQL names stop at 63 bytes.
    return f"test_{settings.DATABASES['default']['NAME']}_tmpl_{run_id[:8]}"[:63]


def _build_template(template: str, verbosity: int) -> None:
    """Migrate a database under a temporary name, then rename it: a builder that dies half
    way leaves no template behind that looks finished."""
    building = f"{template}_build"[:63]
    original_name = connection.settings_dict["NAME"]
    original_test_name = connection.settings_dict["TEST"]["NAME"]
    connection.settings_dict["TEST"]["NAME"] = building
    try:
        connection.creation.create_test_db(
            verbosity=verbosity, autoclobber=True, serialize=False, keepdb=False
        )
    finally:
        connection.close()
        connection.settings_dict["TEST"]["NAME"] = original_test_name
        connection.settings_dict["NAME"] = original_name
        settings.DATABASES["default"]["NAME"] = original_name
    _execute_nodb(f"ALTER DATABASE {_quote(building)} RENAME TO {_quote(template)}")


def create_worker_database(*, run_id: str, verbosity: int) -> str:
    """Give this worker its own copy of the run's migrated template (building the template
    if nobody has yet) and point the default connection at it. Returns the name to restore
    at teardown (see ``destroy_worker_database``)."""
    original_name: str = connection.settings_dict["NAME"]
    worker_name = connection.creation._get_test_db_name()  # test_applause_gw0
    template = _template_name(run_id)
    with _run_lock(run_id):
        if not _database_exists(template):
            _build_template(template, verbosity)
        _execute_nodb(f"DROP DATABASE IF EXISTS {_quote(worker_name)}")
        # PostgreSQL waits up to 5 s for a session still leaving the template.
        _execute_nodb(f"CREATE DATABASE {_quote(worker_name)} TEMPLATE {_quote(template)}")
    if verbosity >= 1:
        print(f"Cloned test database {worker_name} from {template}")
    connection.close()
    _point_at(worker_name)
    connection.ensure_connection()
    return original_name


def _point_at(name: str) -> None:
    """The default connection and the lock connection (its test mirror: wallets/services/
    locks.py) at database ``name``: a worker's advisory locks stay inside its own database."""
    for alias in ("default", "locks"):
        if alias in settings.DATABASES:
            settings.DATABASES[alias]["NAME"] = name
            connections[alias].settings_dict["NAME"] = name


def destroy_worker_database(*, run_id: str, original_name: str, verbosity: int) -> None:
    """Drop this worker's copy and the run's template. A worker that has not cloned yet (it
    ran no database test so far) finds no template and builds it again."""
    worker_name = connection.settings_dict["NAME"]
    connection.close()
    # A live server's thread may still hold a session on the copy (it would make the DROP
    # fail); the run is over, so end such sessions first.
    with connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [worker_name],
        )
    try:
        connection.creation.destroy_test_db(original_name, verbosity=verbosity)
        _point_at(original_name)
    finally:
        with _run_lock(run_id):
            _execute_nodb(f"DROP DATABASE IF EXISTS {_quote(_template_name(run_id))}")
