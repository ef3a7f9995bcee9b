import threading
from typing import Any

import pytest
from django.db import connection
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from accounts.models import IdempotencyRecord
from accounts.tests.factories import UserFactory
from config.api import idempotent
from tests.helpers import client_for
from wallets.models import LedgerTransaction
from wallets.services import wallet_adjust, wallet_get


@pytest.mark.django_db
def test_wallet_shows_own_balance_and_frozen_flag(user_api, user):
    assert user_api.get("/api/v1/wallet/").json() == {"coins": 0, "frozen": False}
    wallet_adjust(user=user, coins=120, reason="welcome", actor=None)
    assert user_api.get("/api/v1/wallet/").json() == {"coins": 120, "frozen": False}


@pytest.mark.django_db
def test_entries_newest_first_paginated_and_private(user):
    other = UserFactory()
    for n in range(1, 6):
        wallet_adjust(user=user, coins=n, reason=f"grant {n}", actor=None)
    wallet_adjust(user=other, coins=999, reason="someone else", actor=None)
    client = client_for(user)
    page = client.get("/api/v1/wallet/entries/?page_size=2").json()
    assert [e["coins"] for e in page["results"]] == [5, 4]
    assert page["results"][0]["balance_after"] == 15
    assert page["results"][0]["kind"] == "grant"
    assert page["results"][0]["memo"] == "Coins from Applause"  # the staff reason stays internal
    assert set(page["results"][0]) == {"id", "kind", "coins", "balance_after", "created_at", "memo"}
    rest = client.get(page["next"]).json()
    assert [e["coins"] for e in rest["results"]] == [3, 2]
    everything = client.get("/api/v1/wallet/entries/?page_size=100").json()["results"]
    assert 999 not in [e["coins"] for e in everything]


@pytest.mark.django_db
def test_entries_filter_by_kind_and_bad_filter(user_api, user):
    wallet_adjust(user=user, coins=10, reason="grant", actor=None)
    wallet_adjust(user=user, coins=-3, reason="fix", actor=None)
    kinds = user_api.get("/api/v1/wallet/entries/?kind=adjustment").json()["results"]
    assert [e["coins"] for e in kinds] == [-3]
    response = user_api.get("/api/v1/wallet/entries/?kind=bogus")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


# --- The Idempotency-Key mechanism, on a view that moves money ------------------------------


@api_view(["POST"])
def _grant_view(request):
    def handler():
        wallet_adjust(
            user=request.user,
            coins=int(request.data["coins"]),
            reason="idempotency test",
            actor=None,
            idempotency_key=f"idem-test:{request.user.pk}:{request.headers['Idempotency-Key']}",
        )
        return Response({"coins": wallet_get(user=request.user).balance}, status=201)

    return idempotent(request, handler)


def _call(user, body, key):
    request = APIRequestFactory().post("/api/v1/test-grant/", body, format="json")
    if key is not None:
        request.META["HTTP_IDEMPOTENCY_KEY"] = key
    force_authenticate(request, user=user)
    return _grant_view(request)


@pytest.mark.django_db
def test_same_key_same_body_replays_first_response():
    user = UserFactory()
    first = _call(user, {"coins": 10}, "abc")
    again = _call(user, {"coins": 10}, "abc")
    assert first.status_code == again.status_code == 201
    assert first.data == again.data == {"coins": 10}
    assert again["Idempotent-Replayed"] == "true"
    assert wallet_get(user=user).balance == 10


@pytest.mark.django_db
def test_same_key_other_body_is_409():
    user = UserFactory()
    _call(user, {"coins": 10}, "abc")
    response = _call(user, {"coins": 11}, "abc")
    assert response.status_code == 409
    assert response.data["error"]["code"] == "idempotency_conflict"
    assert wallet_get(user=user).balance == 10


@pytest.mark.django_db
def test_missing_key_is_400_and_moves_nothing():
    user = UserFactory()
    response = _call(user, {"coins": 10}, None)
    assert response.status_code == 400
    assert response.data["error"]["code"] == "validation_error"
    assert "Idempotency-Key" in response.data["error"]["fields"]
    assert wallet_get(user=user).balance == 0


@pytest.mark.django_db
def test_keys_are_per_user():
    alice, bob = UserFactory(), UserFactory()
    _call(alice, {"coins": 10}, "shared")
    assert _call(bob, {"coins": 20}, "shared").data == {"coins": 20}


@pytest.mark.django_db
def test_client_errors_are_stored_and_replayed():
    user = UserFactory()
    refused = _call(user, {"coins": -5}, "neg")
    assert refused.status_code == 402
    assert _call(user, {"coins": -5}, "neg").data == refused.data
    assert LedgerTransaction.objects.filter(idempotency_key__startswith="idem-test").count() == 0


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_copies_make_one_effect():
    user: Any = UserFactory()
    barrier = threading.Barrier(10)
    responses = []

    def worker():
        try:
            barrier.wait()
            responses.append(_call(user, {"coins": 7}, "burst"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in responses] == [201] * 10
    assert {r.data["coins"] for r in responses} == {7}
    assert wallet_get(user=user).balance == 7
    assert IdempotencyRecord.objects.filter(user_id=user.pk, key="burst").count() == 1
