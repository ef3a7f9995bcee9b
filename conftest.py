"""Fixtures shared by every app's tests. Helpers to import live in ``tests/helpers.py``."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from config import health
from tests import db_template
from tests.helpers import client_for


def pytest_configure(config):
    # Tests create thousands of users: hash their passwords with a fast (insecure) hasher. The
    # production hasher (PBKDF2, a million rounds) costs a fraction of a second each.
    override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]).enable()


# Modules whose every test is marked slow and whose collection alone costs seconds: schemathesis
# builds the fuzz cases of every API operation while collecting (hypothesis examples: ~8 s of
# CPU in each xdist worker). When -m leaves slow tests out (make test-fast), skip them whole.
SLOW_TO_COLLECT = {"tests/test_api_fuzz.py"}


def pytest_ignore_collect(collection_path, config):
    if not config.option.markexpr:
        return None
    if not collection_path.is_relative_to(config.rootpath):
        return None
    if collection_path.relative_to(config.rootpath).as_posix() not in SLOW_TO_COLLECT:
        return None
    # pytest's own -m evaluator (pinned in requirements-dev.txt), asked about a slow test.
    from _pytest.mark.expression import Expression

    def marked(name, /, **kwargs):
        return name == "slow" and not kwargs

    return True if not Expression.compile(config.option.markexpr).evaluate(marked) else None


@pytest.fixture(scope="session")
def django_db_setup(
    request,
    django_test_environment,
    django_db_blocker,
    django_db_use_migrations,
    django_db_keepdb,
    django_db_createdb,
    django_db_modify_db_settings,
):
    """pytest-django's test database, except that xdist workers on PostgreSQL copy one
    database migrated once per run instead of each running every migration
    (``tests/db_template.py``)."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    # pytest-django's own helpers (pinned in requirements-dev.txt): which databases the
    # collected tests use, which of them want serialized_rollback.
    from pytest_django.fixtures import _disable_migrations, _get_databases_for_setup

    verbosity = request.config.option.verbose
    aliases, serialized_aliases = _get_databases_for_setup(request.session.items)
    run_id = getattr(request.config, "workerinput", {}).get("testrunuid")
    cloned = (
        run_id is not None
        and aliases <= {"default"}
        and connection.vendor == "postgresql"
        and django_db_use_migrations
        and not django_db_keepdb
    )
    if cloned:
        with django_db_blocker.unblock():
            original_name = db_template.create_worker_database(run_id=run_id, verbosity=verbosity)
            if serialized_aliases:
                connection._test_serialized_contents = connection.creation.serialize_db_to_string()
        yield
        with django_db_blocker.unblock():
            try:
                db_template.destroy_worker_database(
                    run_id=run_id, original_name=original_name, verbosity=verbosity
                )
            except Exception as exc:
                # As pytest-django's own teardown: a session some test left open (a live
                # server's thread) keeps the database; the services are thrown away anyway.
                request.node.warn(pytest.PytestWarning(f"test database teardown: {exc!r}"))
        return

    # pytest-django's own path (one process, --reuse-db, --nomigrations, SQLite).
    if not django_db_use_migrations:
        _disable_migrations()
    keepdb = django_db_keepdb and not django_db_createdb
    with django_db_blocker.unblock():
        db_cfg = setup_databases(
            verbosity=verbosity,
            interactive=False,
            aliases=aliases,
            serialized_aliases=serialized_aliases,
            keepdb=keepdb,
        )
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            teardown_databases(db_cfg, verbosity=verbosity)


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters and cached reads live in the shared cache (Redis in make test).
    cache.clear()
    health.checks_forget()  # /readyz caches its dependency checks per process


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def user_api(user):
    return client_for(user)


@pytest.fixture(params=["sql", "python"])
def gift_path(request, settings):
    """Run a gift test against both implementations of ``gift_send`` (issue #15): the
    PostgreSQL function ``gift_send_v4`` and the Python reference. They must agree."""
    from django.db import connection

    if request.param == "sql" and connection.vendor != "postgresql":
        pytest.skip("the SQL gift function needs PostgreSQL")
    settings.GIFT_SEND_SQL = request.param == "sql"
    return request.param
