"""Creator moderation: blocked words, muted viewers, holding for approval, reports and the
support team's queue. A hidden message leaves the feed, the pinned strip and the dashboard;
the gift itself always arrives and counts."""

from django.contrib.auth.models import Group

from accounts.tests.factories import UserFactory
from gifts.feed_hooks import veiled_ids
from gifts.models import GiftEvent
from gifts.selectors import leaderboard
from gifts.tests.factories import make_creator
from moderation.models import MessageReport, ReportStatus
from moderation.selectors import HELD, HIDDEN, SHOWN, message_fates, pinned_messages
from moderation.services import moderation_update, reports_resolve
from staff.models import AuditLog
from tests.helpers import client_for


def _fates(*events):
    fates = message_fates(list(GiftEvent.objects.filter(pk__in=[e.pk for e in events])))
    return [fates[e.pk] for e in events]


def test_creator_blocked_words_hide_the_text_not_the_gift(star, fan, send):
    api = client_for(star.user)
    answer = api.patch(
        "/api/v1/creators/me/moderation/",
        {"blocked_words": ["Spoiler", "  bad   word ", "spoiler", ""]},
        format="json",
    )
    assert answer.status_code == 200
    assert answer.json()["blocked_words"] == ["Spoiler", "bad word"]
    blocked = send(fan, star, message="huge SPOILER ahead")
    phrase = send(fan, star, message="what a bad word")
    fine = send(fan, star, message="spoilers are fine as another word")
    assert _fates(blocked, phrase, fine) == [HIDDEN, HIDDEN, SHOWN]
    assert [p.id for p in pinned_messages(creator_id=star.pk, live_id="live1")] == [fine.pk]
    # The gifts themselves arrived: three crowns counted on the leaderboard.
    assert leaderboard(creator_id=star.pk, period="day") == [{"username": "fan", "coins": 3000}]


def test_blocked_words_are_validated(star):
    api = client_for(star.user)
    too_long = api.patch(
        "/api/v1/creators/me/moderation/", {"blocked_words": ["x" * 41]}, format="json"
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "validation_error"
    not_a_list = api.patch("/api/v1/creators/me/moderation/", {"blocked_words": "x"}, format="json")
    assert not_a_list.status_code == 400
    assert api.get("/api/v1/creators/me/moderation/").json()["blocked_words"] == []
    viewer = client_for(UserFactory())
    assert viewer.get("/api/v1/creators/me/moderation/").json()["error"]["code"] == "not_a_creator"


def test_a_muted_viewers_gift_arrives_without_text(star, fan, send):
    other = UserFactory(username="other")
    api = client_for(star.user)
    assert (
        api.post(
            "/api/v1/creators/me/moderation/muted/", {"username": "FAN"}, format="json"
        ).json()["username"]
        == "fan"
    )
    event = send(fan, star, message="you cannot see me")
    assert event.coins == 1000  # the gift went through
    assert veiled_ids([event]) == {event.pk}
    assert pinned_messages(creator_id=star.pk, live_id="live1") == []
    assert api.get("/api/v1/creators/me/moderation/muted/").json()["results"][0]["username"] == (
        "fan"
    )
    missing = api.post("/api/v1/creators/me/moderation/muted/", {"username": "ghost"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "viewer_not_found"
    # Unmuting shows the messages again; unmuting someone not muted is 404.
    assert api.delete("/api/v1/creators/me/moderation/muted/fan/").status_code == 204
    assert veiled_ids([event]) == set()
    assert api.delete(f"/api/v1/creators/me/moderation/muted/{other.username}/").status_code == 404
    assert AuditLog.objects.filter(action__in=["viewer_mute", "viewer_unmute"]).count() == 2


def test_held_messages_show_only_once_approved(star, fan, send):
    before = send(fan, star, message="before holding")
    api = client_for(star.user)
    assert api.patch(
        "/api/v1/creators/me/moderation/", {"hold_messages": True}, format="json"
    ).json()["hold_messages"]
    held = send(fan, star, message="wait for me")
    rejected = send(fan, star, message="not this one")
    assert _fates(before, held, rejected) == [SHOWN, HELD, HELD]
    assert veiled_ids([held, rejected]) == {held.pk, rejected.pk}
    assert [p.id for p in pinned_messages(creator_id=star.pk, live_id="live1")] == [before.pk]
    queue = api.get("/api/v1/creators/me/moderation/held/?live_id=live1").json()["results"]
    assert [row["id"] for row in queue] == [held.pk, rejected.pk]

    # Nobody but the creator decides.
    intruder = client_for(make_creator("other").user)
    assert (
        intruder.post(f"/api/v1/creators/me/moderation/messages/{held.pk}/approve/").status_code
        == 404
    )

    approved = api.post(f"/api/v1/creators/me/moderation/messages/{held.pk}/approve/")
    assert approved.json() == {"id": held.pk, "status": "shown", "dismissed": False}
    hidden = api.post(f"/api/v1/creators/me/moderation/messages/{rejected.pk}/reject/")
    assert hidden.json()["status"] == "hidden"
    assert _fates(held, rejected) == [SHOWN, HIDDEN]
    assert api.get("/api/v1/creators/me/moderation/held/").json()["results"] == []
    # The approved message is pinned from its approval on.
    pins = pinned_messages(creator_id=star.pk, live_id="live1")
    assert {p.id for p in pins} == {before.pk, held.pk}
    assert held.pk not in veiled_ids([held])

    # Turning holding off releases nothing already held, and new messages show at once.
    still_held = send(fan, star, message="sent while holding")
    moderation_update(creator=star, actor=star.user, hold_messages=False)
    after = send(fan, star, message="after holding")
    assert _fates(still_held, after) == [HELD, SHOWN]


def test_report_queue_hide_removes_the_message_everywhere(star, fan, send, api):
    event = send(fan, star, message="nasty words here")
    reporter = client_for(UserFactory())
    assert api.post(f"/api/v1/messages/{event.pk}/report/", {"reason": "abuse"}).status_code == 401
    first = reporter.post(f"/api/v1/messages/{event.pk}/report/", {"reason": "abuse"})
    assert first.status_code == 201
    assert first.json()["status"] == "open"
    again = reporter.post(f"/api/v1/messages/{event.pk}/report/", {"reason": "spam"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    bad = reporter.post(f"/api/v1/messages/{event.pk}/report/", {"reason": "boring"})
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["reason"]
    client_for(UserFactory()).post(f"/api/v1/messages/{event.pk}/report/", {"reason": "spam"})
    assert MessageReport.objects.filter(gift_event=event, status=ReportStatus.OPEN).count() == 2

    support = UserFactory(is_staff=True)
    support.groups.add(Group.objects.get_or_create(name="support")[0])
    assert reports_resolve(actor=support, event_id=event.pk, hide=True) == 2

    assert _fates(event) == [HIDDEN]
    assert veiled_ids([event]) == {event.pk}
    assert pinned_messages(creator_id=star.pk, live_id="live1") == []
    assert not MessageReport.objects.filter(status=ReportStatus.OPEN).exists()
    assert AuditLog.objects.filter(action="message_hide", actor=support).count() == 1
    # A hidden message cannot be reported any more (nobody can see it).
    late = client_for(UserFactory()).post(
        f"/api/v1/messages/{event.pk}/report/", {"reason": "spam"}
    )
    assert late.status_code == 404
    assert late.json()["error"]["code"] == "message_not_found"
    # The creator's dashboard shows it as hidden too.
    page = client_for(star.user)
    page.force_login(star.user)
    html = page.get("/creator/").content.decode()
    assert "nasty words here" not in html


def test_reports_of_messages_nobody_sees_are_404(star, fan, send):
    no_text = send(fan, star, message="")
    reporter = client_for(UserFactory())
    for event_id in (no_text.pk, 999_999):
        answer = reporter.post(f"/api/v1/messages/{event_id}/report/", {"reason": "spam"})
        assert answer.status_code == 404
