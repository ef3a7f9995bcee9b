"""API tokens served from the cache (accounts/auth.py): no token query per request, and a
revoked token or a deactivated user stops working at once."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import token_issue, token_revoke, tokens_revoke_all
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def token_queries(client) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        status = client.get(ME).status_code
    return status, sum("knox_authtoken" in q["sql"] for q in queries)


def test_second_request_reads_no_token_row():
    client = client_with(token_issue(user=UserFactory()))
    assert token_queries(client) == (200, 2)  # knox: the token with its user, the user's tokens
    assert token_queries(client) == (200, 0)


def test_revoked_token_stops_at_once(settings):
    user = UserFactory()
    key = token_issue(user=user)
    other = token_issue(user=user)
    client, other_client = client_with(key), client_with(other)
    assert client.get(ME).status_code == 200
    assert other_client.get(ME).status_code == 200
    token_revoke(token=user.auth_token_set.get(token_key=key[:15]))
    assert client.get(ME).status_code == 401
    assert other_client.get(ME).status_code == 200
    tokens_revoke_all(user=user)
    assert other_client.get(ME).status_code == 401


def test_deactivated_user_stops_at_once():
    user = UserFactory()
    client = client_with(token_issue(user=user))
    assert client.get(ME).status_code == 200
    user.is_active = False
    user.save()
    assert client.get(ME).status_code == 401


def test_cache_off_queries_every_time(settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    client = client_with(token_issue(user=UserFactory()))
    assert token_queries(client) == (200, 2)
    assert token_queries(client) == (200, 2)


def test_forged_token_is_refused():
    client_with(token_issue(user=UserFactory())).get(ME)
    assert client_with("x" * 64).get(ME).status_code == 401
    assert client_with("not-hex!").get(ME).status_code == 401


def test_an_entry_of_another_format_is_a_miss():
    """An entry an older release wrote (or garbage) is read as a miss: the database answers
    and the entry is written again in this release's format."""
    from django.core.cache import cache

    from accounts.auth import token_cache_key

    key = token_issue(user=UserFactory())
    client = client_with(key)
    assert token_queries(client) == (200, 2)
    cache_key = token_cache_key(key.encode())
    cache.set(cache_key, "not an entry", 60)
    assert token_queries(client) == (200, 2)
    assert token_queries(client) == (200, 0)
