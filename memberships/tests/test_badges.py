"""Supporter levels, fan levels, badges, and the loyalty leaderboard (metric=days)."""

import uuid
from datetime import timedelta

import pytest

from accounts.tests.factories import UserFactory
from gifts.badges import badges_for
from gifts.models import GiftTally
from gifts.selectors import (
    leaderboard,
    level_for,
    level_threshold,
    lifetime_gifted,
    utc_today,
    viewer_level,
)
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from memberships.selectors import fan_level, fan_points
from memberships.tests.factories import join, make_tier
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def test_the_level_curve_is_published_and_capped():
    assert [level_threshold(n) for n in (1, 2, 5, 10, 50)] == [0, 10, 640, 7290, 1_176_490]
    assert level_for(0) == 1
    assert level_for(9) == 1
    assert level_for(10) == 2
    assert level_for(7289) == 9
    assert level_for(7290) == 10
    assert level_for(10**12) == 50


def test_days_outrank_one_big_night_on_the_loyalty_board():
    creator = make_creator("loyal")
    steady = UserFactory(username="steady")
    whale = UserFactory(username="whale")
    today = utc_today()
    for back in range(5):  # one coin a day for five days
        GiftTally.objects.create(
            creator=creator, sender=steady, day=today - timedelta(days=back), coins=1, gifts=1
        )
    GiftTally.objects.create(creator=creator, sender=whale, day=today, coins=50_000, gifts=1)
    by_coins = leaderboard(creator_id=creator.pk, period="all")
    assert [r["username"] for r in by_coins] == ["whale", "steady"]
    by_days = leaderboard(creator_id=creator.pk, period="all", metric="days")
    assert by_days == [{"username": "steady", "days": 5}, {"username": "whale", "days": 1}]
    # period=month: only days since the 1st count.
    month = leaderboard(creator_id=creator.pk, period="month", metric="days")
    assert {r["username"]: r["days"] for r in month} == {"steady": min(5, today.day), "whale": 1}

    api = client_for(UserFactory())
    answer = api.get("/api/v1/creators/loyal/leaderboard/?metric=days&period=all")
    assert answer.status_code == 200
    body = answer.json()
    assert body["metric"] == "days"
    assert [(r["username"], r["days"]) for r in body["results"]] == [("steady", 5), ("whale", 1)]
    assert "coins" not in body["results"][0]
    default = api.get("/api/v1/creators/loyal/leaderboard/?period=all").json()
    assert default["metric"] == "coins"
    assert default["results"][0]["coins"] == 50_000
    bad = api.get("/api/v1/creators/loyal/leaderboard/?metric=love")
    assert bad.status_code == 400
    assert "metric" in bad.json()["error"]["fields"]


def test_fans_endpoint_shows_levels_badges_and_membership():
    creator = make_creator("fanpage")
    tier = make_tier(creator, name="Gold", coins=100)
    rose = GiftFactory(slug="rose-b", coins=700)
    fan = fund(UserFactory(username="superfan"), 10_000)
    gift_send(
        sender=fan, creator_handle="fanpage", gift_slug=rose.slug, client_key=str(uuid.uuid4())
    )
    join(fan, creator, tier)
    assert lifetime_gifted(user_id=fan.pk) == 700
    assert viewer_level(user_id=fan.pk) == level_for(700) == 5
    # 700 gift coins + 100 membership coins + 20 × (1 gift day + 30 for the month).
    assert fan_points(creator_id=creator.pk, user_id=fan.pk) == 700 + 100 + 20 * 31
    body = client_for(UserFactory()).get("/api/v1/creators/fanpage/fans/superfan/").json()
    assert body["username"] == "superfan"
    assert body["level"] == 5
    assert body["fan_level"] == fan_level(creator_id=creator.pk, user_id=fan.pk) == 6
    assert body["membership"] == {"tier": "Gold", "months": 1}
    kinds = [b["kind"] for b in body["badges"]]
    assert kinds == ["member", "level", "top3"]
    assert body["badges"][0]["label"] == "Gold · 1 month"
    assert body["badges"][2]["value"] == 1
    # Someone with nothing: level 1, no membership, just the level badge.
    UserFactory(username="lurker")
    lurker = client_for(UserFactory()).get("/api/v1/creators/fanpage/fans/lurker/").json()
    assert lurker["membership"] is None
    assert lurker["level"] == 1
    assert [b["kind"] for b in lurker["badges"]] == ["level"]
    assert client_for(fan).get("/api/v1/creators/fanpage/fans/ghost/").status_code == 404
    assert client_for(fan).get("/api/v1/creators/nobody/fans/superfan/").status_code == 404


def test_leaderboard_rows_and_live_events_carry_badges():
    from gifts.combos import ComboTracker
    from gifts.live import _frame

    creator = make_creator("badged")
    tier = make_tier(creator, name="Fan club", coins=50)
    heart = GiftFactory(slug="heart-b", coins=5)
    fan = fund(UserFactory(username="member1"), 1000)
    join(fan, creator, tier)
    event = gift_send(
        sender=fan,
        creator_handle="badged",
        gift_slug=heart.slug,
        live_id="live-1",
        client_key=str(uuid.uuid4()),
    )
    assert badges_for(creator_id=creator.pk, user_id=fan.pk)[0]["kind"] == "member"
    frame = _frame(event, ComboTracker())
    assert '"kind":"member"' in frame
    assert "Fan club" in frame
    rows = client_for(fan).get("/api/v1/creators/badged/leaderboard/?period=day").json()
    assert rows["results"][0]["username"] == "member1"
    assert rows["results"][0]["badges"][0]["label"] == "Fan club · 1 month"
