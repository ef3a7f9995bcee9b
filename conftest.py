"""Fixtures shared by every app's tests."""

import uuid

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters and cached reads live in the shared cache (Redis in make test).
    cache.clear()
    yield


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def user_api(user):
    return client_for(user)


def idem() -> dict:
    """Headers for a money POST with a fresh Idempotency-Key."""
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}
