"""The hot HTTP path of ``POST gifts/send/`` (gifts/api_hot.py, issue #15): the same answers
as the DRF view, request for request, and the token and throttle rules on it."""

import uuid

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django_redis.cache import RedisCache
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from config.throttles import MoneyThrottle
from creators.services import creator_create
from gifts.api import GiftSendView
from gifts.models import GiftEvent
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import client_for, idem
from wallets.services import wallet_freeze

pytestmark = pytest.mark.django_db

SEND = "/api/v1/gifts/send/"
# Headers that must not differ between the two paths (Content-Length follows the body).
COMPARED_HEADERS = (
    "Content-Type",
    "Allow",
    "Vary",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "Content-Security-Policy",
    "Retry-After",
    "Idempotent-Replayed",
    "WWW-Authenticate",
)


@pytest.fixture(autouse=True)
def _postgresql(settings):
    if connection.vendor != "postgresql":
        pytest.skip("the hot path serves the PostgreSQL gift")
    settings.GIFT_SEND_SQL = True
    settings.API_HOT_PATH = True


@pytest.fixture
def catalog():
    GiftFactory(slug="rose", name="Rose", coins=1)
    GiftFactory(slug="lion", name="Lion", coins=500)
    make_creator("star")


@pytest.fixture
def drf_not_called(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the DRF view was called")

    monkeypatch.setattr(GiftSendView, "post", refuse)


def post(client, body, key="same", path=SEND, **extra):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    if isinstance(body, bytes | str):
        extra.setdefault("content_type", "application/json")
        return client.post(path, body, **headers, **extra)
    return client.post(path, body, format="json", **headers, **extra)


def test_a_token_gift_is_served_without_drf(catalog, drf_not_called):
    sender = fund(UserFactory(), 100)
    api = client_for(sender)
    first = post(api, {"creator": "star", "gift": "rose", "quantity": 3, "currency": "EUR"})
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["coins_spent"], body["diamonds"], body["wallet"]) == (3, 3, {"coins": 97})
    assert body["creator_value"]["currency"] == "EUR"
    again = post(api, {"creator": "star", "gift": "rose", "quantity": 3, "currency": "EUR"})
    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (201, body, "true")
    other = post(api, {"creator": "star", "gift": "rose", "quantity": 2})
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_conflict")
    refused = post(api, {"creator": "nobody", "gift": "rose"}, key="k2")
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "creator_not_found")
    assert post(api, {"creator": "nobody", "gift": "rose"}, key="k2").json() == refused.json()
    assert GiftEvent.objects.count() == 1


def _cases(sender_username: str) -> list[tuple[str, dict]]:
    """(name, request) pairs covering every answer of the send view."""
    ok = {"creator": "star", "gift": "rose"}
    return [
        ("created", {"body": {**ok, "quantity": 2, "live_id": "l-1", "message": "<b>hi</b>"}}),
        ("replayed", {"body": {**ok, "quantity": 2, "live_id": "l-1", "message": "<b>hi</b>"}}),
        ("conflict", {"body": ok}),
        ("goal null", {"body": {**ok, "goal": None}, "key": "k-goal"}),
        ("no key", {"body": ok, "key": None}),
        ("bad key", {"body": ok, "key": "has space"}),
        ("long key", {"body": ok, "key": "k" * 256}),
        ("unknown creator", {"body": {**ok, "creator": "nobody"}, "key": "k1"}),
        ("unknown creator replayed", {"body": {**ok, "creator": "nobody"}, "key": "k1"}),
        ("unknown gift", {"body": {**ok, "gift": "nope"}, "key": "k2"}),
        ("too poor", {"body": {**ok, "gift": "lion", "quantity": 5}, "key": "k3"}),
        ("blocked message", {"body": {**ok, "message": "a scam"}, "key": "k4"}),
        ("unknown goal", {"body": {**ok, "goal": 123456}, "key": "k5"}),
        ("quantity 0", {"body": {**ok, "quantity": 0}, "key": "k6"}),
        ("quantity text", {"body": {**ok, "quantity": "2"}, "key": "k7"}),
        ("quantity true", {"body": {**ok, "quantity": True}, "key": "k8"}),
        ("quantity null", {"body": {**ok, "quantity": None}, "key": "k9"}),
        ("blank creator", {"body": {**ok, "creator": "  "}, "key": "k10"}),
        ("creator too long", {"body": {**ok, "creator": "x" * 31}, "key": "k11"}),
        ("creator number", {"body": {**ok, "creator": 7}, "key": "k12"}),
        ("both contexts", {"body": {**ok, "live_id": "a", "video_id": "b"}, "key": "k13"}),
        ("bad live id", {"body": {**ok, "live_id": "a b"}, "key": "k14"}),
        ("long message", {"body": {**ok, "message": "x" * 151}, "key": "k15"}),
        ("bad currency", {"body": {**ok, "currency": "JPY"}, "key": "k16"}),
        ("goal zero", {"body": {**ok, "goal": 0}, "key": "k17"}),
        ("no creator", {"body": {"gift": "rose"}, "key": "k18"}),
        ("a list", {"body": [ok], "key": "k19"}),
        ("malformed", {"body": b'{"creator": ', "key": "k20"}),
        ("NaN", {"body": b'{"creator": "star", "gift": "rose", "quantity": NaN}', "key": "k21"}),
        ("form body", {"body": "creator=star", "key": "k22", "content_type": "text/plain"}),
        ("html wanted", {"body": ok, "key": "k23", "HTTP_ACCEPT": "text/html"}),
        ("xml wanted", {"body": ok, "key": "k24", "HTTP_ACCEPT": "application/xml"}),
        ("query string", {"body": ok, "key": "k25", "path": SEND + "?format=json"}),
        ("nul", {"body": {**ok, "message": "a\x00b"}, "key": "k26"}),
        ("self gift", {"body": {**ok, "creator": sender_username}, "key": "k27"}),
        ("bad token", {"body": ok, "key": "k28", "HTTP_AUTHORIZATION": "Token nope"}),
        ("token, no key", {"body": ok, "key": "k29", "HTTP_AUTHORIZATION": "Token"}),
        ("no auth", {"body": ok, "key": "k30", "HTTP_AUTHORIZATION": ""}),
        ("throttled", {"body": ok, "key": "k31"}),
        ("frozen", {"body": ok, "key": "k32"}),
    ]


def _answers(settings, monkeypatch, *, hot: bool) -> dict[str, tuple]:
    settings.API_HOT_PATH = hot
    monkeypatch.setattr(MoneyThrottle, "THROTTLE_RATES", {"money": None})
    sender = fund(UserFactory(), 100)
    creator_create(user=sender, handle=f"self{sender.pk}", display_name="Self")
    _token, token = AuthToken.objects.create(user=sender)
    api = APIClient()
    answers = {}
    for name, request in _cases(f"self{sender.pk}"):
        request = {"HTTP_AUTHORIZATION": f"Token {token}", **request}
        body, key = request.pop("body"), request.pop("key", "same")
        path = request.pop("path", SEND)
        if name == "throttled":
            monkeypatch.setattr(MoneyThrottle, "THROTTLE_RATES", {"money": "1/min"})
            post(api, body, key="k-first", **request)  # the minute's one request
        if name == "frozen":
            monkeypatch.setattr(MoneyThrottle, "THROTTLE_RATES", {"money": None})
            wallet_freeze(user=sender, reason="chargeback")
        response = post(api, body, key=key, path=path, **request)
        payload = response.json() if response["Content-Type"] == "application/json" else None
        if response.status_code == 201 and payload is not None:
            payload = {k: v for k, v in payload.items() if k != "id"}
        headers = {h: response.get(h) for h in COMPARED_HEADERS}
        answers[name] = (response.status_code, payload, headers)
    monkeypatch.undo()
    return answers


def test_every_answer_is_the_drf_views_answer(catalog, settings, monkeypatch):
    drf = _answers(settings, monkeypatch, hot=False)
    hot = _answers(settings, monkeypatch, hot=True)
    for name in drf:
        assert hot[name] == drf[name], name
    statuses = {name: answer[0] for name, answer in hot.items()}
    assert statuses["created"] == statuses["replayed"] == statuses["query string"] == 201
    assert hot["replayed"][2]["Idempotent-Replayed"] == "true"
    assert (statuses["conflict"], statuses["unknown goal"]) == (409, 404)
    assert statuses["throttled"] == 429
    assert hot["throttled"][2]["Retry-After"]
    assert (statuses["form body"], statuses["xml wanted"], statuses["malformed"]) == (415, 406, 400)
    assert statuses["bad token"] == statuses["no auth"] == statuses["token, no key"] == 401
    assert (statuses["too poor"], statuses["frozen"], statuses["self gift"]) == (402, 423, 400)


def test_a_revoked_token_is_refused_at_once(catalog, drf_not_called):
    sender = fund(UserFactory(), 100)
    api = client_for(sender)
    assert post(api, {"creator": "star", "gift": "rose"}, key="a").status_code == 201  # cached
    AuthToken.objects.filter(user=sender).delete()  # sign-out, password change, staff
    refused = post(api, {"creator": "star", "gift": "rose"}, key="b")
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        401,
        "authentication_failed",
    )
    assert GiftEvent.objects.count() == 1


def test_a_deactivated_user_is_refused_at_once(catalog):
    sender = fund(UserFactory(), 100)
    api = client_for(sender)
    assert post(api, {"creator": "star", "gift": "rose"}, key="a").status_code == 201
    sender.is_active = False
    sender.save()
    assert post(api, {"creator": "star", "gift": "rose"}, key="b").status_code == 401


def test_redis_down_the_gift_is_still_served(catalog, settings, drf_not_called):
    sender = fund(UserFactory(), 100)
    api = client_for(sender)
    caches = {**settings.CACHES}
    if "django_redis" not in caches["default"]["BACKEND"]:
        pytest.skip("needs the Redis cache")
    from tests.helpers import free_port

    caches["default"] = {**caches["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    settings.CACHES = caches  # nothing listens there: token cache and throttle fail open
    response = post(api, {"creator": "star", "gift": "rose"}, key=str(uuid.uuid4()))
    assert response.status_code == 201, response.content
    assert GiftEvent.objects.count() == 1


def test_the_money_throttle_is_one_atomic_budget(catalog, monkeypatch):
    monkeypatch.setattr(MoneyThrottle, "THROTTLE_RATES", {"money": "3/min"})
    sender = fund(UserFactory(), 100)
    api = client_for(sender)
    statuses = [post(api, {"creator": "star", "gift": "rose"}, **idem_key()).status_code]
    statuses += [post(api, {"creator": "star", "gift": "rose"}, **idem_key()).status_code]
    statuses += [post(api, {"creator": "star", "gift": "rose"}, **idem_key()).status_code]
    refused = post(api, {"creator": "star", "gift": "rose"}, **idem_key())
    assert statuses == [201, 201, 201]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 20  # one request's share of the minute
    # Another person's budget is their own.
    assert (
        post(client_for(fund(UserFactory(), 5)), {"creator": "star", "gift": "rose"}).status_code
        == 201
    )


def test_the_budget_is_shared_with_the_drf_view(catalog, monkeypatch):
    """The hot path counts the throttle inside the token's Redis call; the DRF view (here: a
    query string sends the request there) counts the same user's same key."""
    monkeypatch.setattr(MoneyThrottle, "THROTTLE_RATES", {"money": "3/min"})
    api = client_for(fund(UserFactory(), 100))
    ok = {"creator": "star", "gift": "rose"}
    statuses = [post(api, ok, **idem_key()).status_code]  # token cached: counted by the view
    statuses += [post(api, ok, **idem_key()).status_code]  # counted with the cached token
    statuses += [post(api, ok, path=SEND + "?x=1", **idem_key()).status_code]  # DRF view
    assert statuses == [201, 201, 201]
    assert post(api, ok, **idem_key()).status_code == 429
    assert post(api, ok, path=SEND + "?x=1", **idem_key()).status_code == 429


def test_token_and_throttle_are_one_redis_call(catalog, monkeypatch, drf_not_called):
    import redis

    if not isinstance(caches["default"], RedisCache):
        pytest.skip("needs the Redis cache")
    monkeypatch.setattr(MoneyThrottle, "THROTTLE_RATES", {"money": "100/min"})
    api = client_for(fund(UserFactory(), 100))
    assert post(api, {"creator": "star", "gift": "rose"}, **idem_key()).status_code == 201
    calls: list[str] = []
    execute = redis.Redis.execute_command

    def counted(self, *args, **options):
        calls.append(str(args[0]))
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    assert post(api, {"creator": "star", "gift": "rose"}, **idem_key()).status_code == 201
    assert calls == ["EVALSHA"]
    # Switched off, the throttle costs nothing: the token's GET alone.
    calls.clear()
    monkeypatch.setattr(MoneyThrottle, "THROTTLE_RATES", {"money": None})
    assert post(api, {"creator": "star", "gift": "rose"}, **idem_key()).status_code == 201
    assert calls == ["GET"]


def idem_key() -> dict:
    return {"key": idem()["HTTP_IDEMPOTENCY_KEY"]}


def test_a_session_request_takes_the_drf_view(catalog):
    sender = fund(UserFactory(), 100)
    browser = Client()
    browser.force_login(sender)
    response = browser.post(
        SEND,
        {"creator": "star", "gift": "rose"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="s1",
    )
    assert response.status_code == 201, response.content
