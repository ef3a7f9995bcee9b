"""Fixtures shared by every app's tests. Helpers to import live in ``tests/helpers.py``."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from config import health
from tests.helpers import client_for


def pytest_configure(config):
    # Tests create thousands of users: hash their passwords with a fast (insecure) hasher. The
    # production hasher (PBKDF2, a million rounds) costs a fraction of a second each.
    override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]).enable()


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
    PostgreSQL function ``gift_send_v3`` and the Python reference. They must agree."""
    from django.db import connection

    if request.param == "sql" and connection.vendor != "postgresql":
        pytest.skip("the SQL gift function needs PostgreSQL")
    settings.GIFT_SEND_SQL = request.param == "sql"
    return request.param
