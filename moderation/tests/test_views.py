"""The control room's pages and forms (the browser test drives them in Chromium)."""

from django.test import Client

from accounts.tests.factories import UserFactory
from creators.services import creator_live_start
from gifts.tests.factories import make_creator
from moderation.models import CreatorModeration, MessageDecision, MutedViewer


def _client(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_the_room_shows_the_live_pins_and_messages(star, fan, send):
    live_id = creator_live_start(creator=star).live_id
    event = send(fan, star, message="hello room", live_id=live_id)
    page = _client(star.user).get("/creator/live/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "hello room" in html
    assert f'action="/creator/live/messages/{event.pk}/dismiss/"' in html
    assert "csrfmiddlewaretoken" in html
    part = _client(star.user).get("/creator/live/?part=room").content.decode()
    assert "hello room" in part
    assert "<html" not in part
    # A viewer who is not a creator is offered to become one.
    assert "creator" in _client(fan).get("/creator/live/").content.decode().lower()


def test_forms_need_csrf_and_refuse_other_creators_messages(star, fan, send):
    event = send(fan, star, message="mine")
    strict = _client(star.user, enforce_csrf_checks=True)
    assert strict.post(f"/creator/live/messages/{event.pk}/dismiss/").status_code == 403
    other = make_creator("other")
    answer = _client(other.user).post(f"/creator/live/messages/{event.pk}/reject/", follow=True)
    assert "There is no such message." in answer.content.decode()
    assert not MessageDecision.objects.exists()
    assert _client(fan).post(f"/creator/live/messages/{event.pk}/reject/").status_code == 404


def test_rules_and_mute_forms(star):
    UserFactory(username="loud")
    client = _client(star.user)
    client.post("/creator/live/rules/", {"blocked_words": "spoiler\nbad word, other"})
    rules = CreatorModeration.objects.get(creator=star)
    assert rules.blocked_words == ["spoiler", "bad word", "other"]
    assert rules.hold_messages is False
    client.post("/creator/live/rules/", {"blocked_words": "", "hold_messages": "on"})
    rules.refresh_from_db()
    assert (rules.blocked_words, rules.hold_messages) == ([], True)

    client.post("/creator/live/mute/", {"username": "loud"})
    assert MutedViewer.objects.filter(creator=star, user__username="loud").exists()
    shown = client.post("/creator/live/mute/", {"username": "nobody"}, follow=True)
    assert "There is no viewer with that username." in shown.content.decode()
    client.post("/creator/live/mute/", {"username": "loud", "undo": "1"})
    assert not MutedViewer.objects.exists()


def test_go_live_still_posts_to_the_same_address(star):
    client = _client(star.user)
    answer = client.post("/creator/live/", {"action": "start"})
    assert answer.status_code == 302
    assert "LIVE" in client.get("/creator/live/").content.decode()
