"""Pinned (highlighted) messages: tiers, until, dismissal, and the public API."""

from datetime import timedelta

from django.test import override_settings

from gifts.tests.factories import make_creator
from moderation.selectors import pin_tier, pinned_messages
from moderation.services import message_dismiss
from tests.helpers import client_for

TIERS = [(100, 30, "#1e88e5"), (1000, 120, "#f9a825"), (5000, 300, "#d81b60")]


@override_settings(LIVE_PIN_TIERS=TIERS)
def test_tier_is_the_highest_threshold_reached():
    assert pin_tier(99) is None
    assert (pin_tier(100).seconds, pin_tier(100).colour) == (30, "#1e88e5")
    assert pin_tier(999).seconds == 30
    assert (pin_tier(1000).rank, pin_tier(1000).seconds) == (2, 120)
    assert pin_tier(4999).seconds == 120
    assert (pin_tier(5000).rank, pin_tier(5000).seconds) == (3, 300)


@override_settings(LIVE_PIN_TIERS=TIERS)
def test_a_gift_with_a_message_is_pinned_for_its_tiers_time(star, fan, send):
    small = send(fan, star, "rose", quantity=10, message="hi from 100")  # 100 coins
    big = send(fan, star, "crown", quantity=5, message="five thousand")  # 5,000 coins
    send(fan, star, "rose", quantity=9, message="not enough")  # 90 coins: never pinned
    send(fan, star, "crown", message="")  # no message: nothing to pin
    send(fan, star, "crown", message="other live", live_id="live2")

    pins = pinned_messages(creator_id=star.pk, live_id="live1", now=big.created_at)
    assert [(p.id, p.username, p.message, p.coins) for p in pins] == [
        (big.pk, "fan", "five thousand", 5000),
        (small.pk, "fan", "hi from 100", 100),
    ]
    assert pins[0].until == big.created_at + timedelta(seconds=300)
    assert pins[1].until == small.created_at + timedelta(seconds=30)
    assert (pins[0].colour, pins[1].colour) == ("#d81b60", "#1e88e5")

    later = small.created_at + timedelta(seconds=31)
    assert [p.id for p in pinned_messages(creator_id=star.pk, live_id="live1", now=later)] == [
        big.pk
    ]
    gone = big.created_at + timedelta(seconds=300)
    assert pinned_messages(creator_id=star.pk, live_id="live1", now=gone) == []


@override_settings(LIVE_PIN_TIERS=TIERS)
def test_pinned_api_answers_the_contract(api, star, fan, send):
    event = send(fan, star, "crown", message="hello")
    body = api.get("/api/v1/creators/star/live/live1/pinned/").json()
    assert body == {
        "results": [
            {
                "id": event.pk,
                "username": "fan",
                "message": "hello",
                "coins": 1000,
                "until": (event.created_at + timedelta(seconds=120)).isoformat(),
                "tier": 2,
                "colour": "#f9a825",
            }
        ]
    }
    assert api.get("/api/v1/creators/nobody/live/live1/pinned/").status_code == 404
    bad = api.get("/api/v1/creators/star/live/bad%20id/pinned/")
    assert bad.status_code == 404
    assert bad.json()["error"]["code"] == "creator_not_found"


def test_the_creator_dismisses_a_pin_and_nobody_else_can(api, star, fan, send):
    event = send(fan, star, "crown", message="pin me")
    other = make_creator("other")
    for intruder in (other.user, fan):
        answer = client_for(intruder).post(
            f"/api/v1/creators/me/moderation/messages/{event.pk}/dismiss/"
        )
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] in ("message_not_found", "not_a_creator")
    assert [p.id for p in pinned_messages(creator_id=star.pk, live_id="live1")] == [event.pk]

    answer = client_for(star.user).post(
        f"/api/v1/creators/me/moderation/messages/{event.pk}/dismiss/"
    )
    assert answer.status_code == 200
    assert answer.json() == {"id": event.pk, "status": "shown", "dismissed": True}
    assert pinned_messages(creator_id=star.pk, live_id="live1") == []
    assert api.get("/api/v1/creators/star/live/live1/pinned/").json() == {"results": []}
    # Idempotent: a second dismiss changes nothing and answers the same.
    again = message_dismiss(creator=star, actor=star.user, event_id=event.pk)
    assert again.dismissed_at is not None


def test_unknown_or_malformed_message_ids_are_404(star):
    creator_api = client_for(star.user)
    assert (
        creator_api.post("/api/v1/creators/me/moderation/messages/999999/dismiss/").status_code
        == 404
    )
    assert creator_api.post("/api/v1/creators/me/moderation/messages/1/explode/").status_code == 404
