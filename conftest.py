"""Fixtures shared by every app's tests."""

import os
import uuid

import pytest
from django.core.cache import cache
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from config import health

# Headless Chromium as root (no sandbox), never reaching out to the internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def launch_chromium(playwright):
    """The browser of the browser tests: ``CHROMIUM_PATH`` (set by scripts/with_services.sh)."""
    return playwright.chromium.launch(
        executable_path=os.environ["CHROMIUM_PATH"], args=CHROMIUM_ARGS
    )


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters and cached reads live in the shared cache (Redis in make test).
    cache.clear()
    health.checks_forget()  # /readyz caches its dependency checks per process
    yield


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


def client_for(user) -> APIClient:
    client = APIClient()
    _instance, key = AuthToken.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def user_api(user):
    return client_for(user)


def idem() -> dict:
    """Headers for a money POST with a fresh Idempotency-Key."""
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


@pytest.fixture(params=["sql", "python"])
def gift_path(request, settings):
    """Run a gift test against both implementations of ``gift_send`` (issue #15): the
    PostgreSQL function ``gift_send_v1`` and the Python reference. They must agree."""
    from django.db import connection

    if request.param == "sql" and connection.vendor != "postgresql":
        pytest.skip("the SQL gift function needs PostgreSQL")
    settings.GIFT_SEND_SQL = request.param == "sql"
    return request.param
