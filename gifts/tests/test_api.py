import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from gifts.models import GiftEvent
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import client_for, idem
from wallets.services import wallet_get

# Every rule runs against the SQL function and the Python reference (conftest.gift_path).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gift_path")]


@pytest.fixture
def catalog():
    now = timezone.now()
    return {
        "rose": GiftFactory(slug="rose", name="Rose", coins=1, sort_order=1),
        "lion": GiftFactory(slug="lion", name="Lion", coins=29999, sort_order=2),
        "old": GiftFactory(slug="old", available_until=now - timedelta(hours=1)),
        "pumpkin": GiftFactory(
            slug="pumpkin", sort_order=5, available_until=now + timedelta(days=3)
        ),
        "off": GiftFactory(slug="off", is_active=False),
        "us-only": GiftFactory(slug="us-only", sort_order=6, countries=["US"]),
    }


def test_gift_list_only_available_and_cacheable(api, catalog):
    response = api.get("/api/v1/gifts/")
    assert response.status_code == 200
    slugs = [g["slug"] for g in response.json()["results"]]
    assert slugs[:2] == ["rose", "lion"]
    assert set(slugs) == {"rose", "lion", "pumpkin", "us-only"}
    rose = response.json()["results"][0]
    assert set(rose) == {"id", "slug", "name", "coins", "image_url", "category", "available_until"}
    assert rose["image_url"].endswith("/static/gifts/rose.svg")
    assert response.json()["results"][2]["available_until"] is not None
    etag, last_modified = response["ETag"], response["Last-Modified"]
    assert api.get("/api/v1/gifts/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert api.get("/api/v1/gifts/", HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304
    catalog["rose"].coins = 2
    catalog["rose"].save()
    changed = api.get("/api/v1/gifts/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert "us-only" not in [
        g["slug"] for g in api.get("/api/v1/gifts/?country=de").json()["results"]
    ]


def test_send_gift_api(catalog):
    make_creator("star")
    sender = fund(UserFactory(), 100)
    client = client_for(sender)
    response = client.post(
        "/api/v1/gifts/send/",
        {"creator": "star", "gift": "rose", "quantity": 3, "video_id": "v1", "message": "hi"},
        format="json",
        **idem(),
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["coins_spent"] == 3
    assert body["wallet"] == {"coins": 97}
    assert GiftEvent.objects.get(pk=body["id"]).video_id == "v1"


def test_send_requires_key_and_auth(api, catalog):
    make_creator("star")
    sender = fund(UserFactory(), 100)
    assert api.post("/api/v1/gifts/send/", {}, format="json").status_code == 401
    response = client_for(sender).post(
        "/api/v1/gifts/send/", {"creator": "star", "gift": "rose"}, format="json"
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]


def test_retry_replays_and_other_body_conflicts(catalog):
    make_creator("star")
    sender = fund(UserFactory(), 100)
    client = client_for(sender)
    headers = idem()
    first = client.post(
        "/api/v1/gifts/send/", {"creator": "star", "gift": "rose"}, format="json", **headers
    )
    again = client.post(
        "/api/v1/gifts/send/", {"creator": "star", "gift": "rose"}, format="json", **headers
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    other = client.post(
        "/api/v1/gifts/send/",
        {"creator": "star", "gift": "rose", "quantity": 2},
        format="json",
        **headers,
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert GiftEvent.objects.count() == 1
    assert wallet_get(user=sender).balance == 99


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"creator": "star", "gift": "rose", "quantity": 0}, 400, "validation_error"),
        ({"creator": "star", "gift": "rose", "quantity": -1}, 400, "validation_error"),
        ({"creator": "star", "gift": "rose", "quantity": 10000}, 400, "validation_error"),
        ({"creator": "star", "gift": "rose", "quantity": "lots"}, 400, "validation_error"),
        ({"creator": "star", "gift": "rose", "quantity": [1]}, 400, "validation_error"),
        ({"creator": "star"}, 400, "validation_error"),
        ({"gift": "rose"}, 400, "validation_error"),
        ({"creator": "star", "gift": "rose", "message": "x" * 151}, 400, "validation_error"),
        (
            {"creator": "star", "gift": "rose", "live_id": "a", "video_id": "b"},
            400,
            "validation_error",
        ),
        ({"creator": "star", "gift": "rose", "live_id": "<script>"}, 400, "validation_error"),
        ({"creator": "star", "gift": "rose", "message": "a scam!"}, 400, "message_blocked"),
        ({"creator": "nobody", "gift": "rose"}, 404, "creator_not_found"),
        ({"creator": "star", "gift": "nope"}, 404, "gift_not_found"),
        ({"creator": "star", "gift": "old"}, 400, "gift_unavailable"),
        ({"creator": "star", "gift": "off"}, 400, "gift_unavailable"),
        ({"creator": "star", "gift": "lion"}, 402, "insufficient_funds"),
        ({"creator": "me", "gift": "rose"}, 400, "self_gift"),
    ],
)
def test_send_refusals(catalog, body, status, code):
    make_creator("star")
    sender = fund(UserFactory(), 100)
    from creators.services import creator_create

    creator_create(user=sender, handle="me-too", display_name="Me")
    if body.get("creator") == "me":
        body = {**body, "creator": "me-too"}
    response = client_for(sender).post("/api/v1/gifts/send/", body, format="json", **idem())
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    assert GiftEvent.objects.count() == 0
    assert wallet_get(user=sender).balance == 100


def test_leaderboard_periods(catalog):
    from gifts.services import gift_send

    creator = make_creator("star")
    big, small = fund(UserFactory(username="big"), 1000), fund(UserFactory(username="small"), 1000)
    gift_send(sender=big, creator_handle="star", gift_slug="rose", quantity=50, client_key="1")
    gift_send(sender=small, creator_handle="star", gift_slug="rose", quantity=5, client_key="1")
    gift_send(sender=small, creator_handle="star", gift_slug="rose", quantity=6, client_key="2")
    api = client_for(big)
    for period in ("day", "week", "all"):
        response = api.get(f"/api/v1/creators/star/leaderboard/?period={period}")
        assert response.status_code == 200
        rows = response.json()["results"]  # each row also carries the sender's badges
        assert [{"username": r["username"], "coins": r["coins"]} for r in rows] == [
            {"username": "big", "coins": 50},
            {"username": "small", "coins": 11},
        ]
    assert api.get("/api/v1/creators/star/leaderboard/?period=year").status_code == 400
    assert api.get("/api/v1/creators/nobody/leaderboard/").status_code == 404
    assert creator.pk


def test_leaderboard_windows(catalog):
    from gifts.models import GiftTally
    from gifts.selectors import leaderboard, utc_today

    creator = make_creator("star")
    fan = UserFactory(username="fan")
    today = utc_today()
    GiftTally.objects.create(creator=creator, sender=fan, day=today - timedelta(days=30), coins=7)
    assert leaderboard(creator_id=creator.pk, period="day") == []
    assert leaderboard(creator_id=creator.pk, period="all") == [{"username": "fan", "coins": 7}]


def test_unknown_key_uuid_is_fine(catalog):
    make_creator("star")
    sender = fund(UserFactory(), 10)
    response = client_for(sender).post(
        "/api/v1/gifts/send/",
        {"creator": "STAR", "gift": "Rose"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()) * 5,
    )
    assert response.status_code == 201
