"""Issue 21 items 3 and 8: going live from the dashboard, and finding creators."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from creators.models import LiveSession
from creators.selectors import creator_live_session, creators_live_now
from creators.services import creator_live_end, creator_live_start
from gifts.services import CONTEXT_ID_RE, gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator


@pytest.mark.django_db
def test_go_live_opens_one_session_and_ending_twice_is_harmless():
    creator = make_creator("golive")
    first = creator_live_start(creator=creator)
    again = creator_live_start(creator=creator)
    assert first.pk == again.pk
    assert CONTEXT_ID_RE.match(first.live_id)
    assert creator_live_session(creator_id=creator.pk) == first

    ended = creator_live_end(creator=creator)
    assert ended is not None
    assert ended.ended_at is not None
    assert creator_live_end(creator=creator) is None
    assert creator_live_session(creator_id=creator.pk) is None

    second = creator_live_start(creator=creator)
    assert second.pk != first.pk
    assert second.live_id != first.live_id


@pytest.mark.django_db
def test_a_forgotten_live_stops_counting_and_a_new_start_ends_it(settings):
    creator = make_creator("forgot")
    old = creator_live_start(creator=creator, now=timezone.now() - timedelta(hours=13))
    assert creator_live_session(creator_id=creator.pk) is None
    assert creator not in creators_live_now()
    fresh = creator_live_start(creator=creator)
    old.refresh_from_db()
    assert old.ended_at is not None
    assert fresh.pk != old.pk


@pytest.mark.django_db(transaction=True)
def test_two_go_live_clicks_at_once_make_one_session():
    creator = make_creator("racer")
    barrier = threading.Barrier(4)
    sessions, errors = [], []

    def click():
        try:
            barrier.wait()
            sessions.append(creator_live_start(creator=creator).pk)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(sessions)) == 1
    assert LiveSession.objects.filter(creator=creator, ended_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_dashboard_switch_shows_the_overlay_url_and_the_page_shows_live(client):
    GiftFactory(slug="rose", coins=1)
    creator = make_creator("streamer")
    client.force_login(creator.user)
    page = client.get("/creator/").content.decode()
    assert "Go live" in page
    assert "overlay-url" not in page

    response = client.post("/creator/live/", {"action": "start"})
    assert response.status_code == 302
    session = LiveSession.objects.get(creator=creator, ended_at__isnull=True)
    page = client.get("/creator/").content.decode()
    assert f"http://testserver/overlay/streamer/{session.live_id}/" in page
    assert "data-copy-target" in page

    fan = Client()
    fan.force_login(fund(UserFactory(), 10))
    public = fan.get("/creators/streamer/").content.decode()
    assert 'data-testid="live-badge"' in public
    assert f'data-live-id="{session.live_id}"' in public

    client.post("/creator/live/", {"action": "end"})
    public = fan.get("/creators/streamer/").content.decode()
    assert "live-badge" not in public
    assert "data-live-id" not in public


@pytest.mark.django_db
def test_only_a_creator_can_use_the_switch_and_only_by_post(client):
    viewer = UserFactory()
    client.force_login(viewer)
    assert client.post("/creator/live/", {"action": "start"}).status_code == 404
    creator = make_creator("getter")
    client.force_login(creator.user)
    # GET is the control room (moderation app, issue 19): it never starts a session.
    assert client.get("/creator/live/").status_code == 200
    assert not LiveSession.objects.exists()


@pytest.mark.django_db
def test_directory_searches_and_shows_who_is_live_and_popular(client):
    GiftFactory(slug="rose", coins=5)
    alpha = make_creator("alpha-one")
    alpha.display_name = "Alpha Singer"
    alpha.save(update_fields=["display_name"])
    beta = make_creator("beta")
    make_creator("gamma")
    creator_live_start(creator=beta)
    fan = fund(UserFactory(), 100)
    gift_send(sender=fan, creator_handle="alpha-one", gift_slug="rose", quantity=3, client_key="a")

    page = client.get("/creators/?q=singer").content.decode()
    results = page.split('data-testid="search-results"')[1].split("</section>")[0]
    assert "/creators/alpha-one/" in results
    assert "/creators/gamma/" not in results

    live = page.split('data-testid="live-now"')[1].split("</section>")[0]
    assert "/creators/beta/" in live
    assert "/creators/alpha-one/" not in live

    popular = page.split('data-testid="popular"')[1].split("</section>")[0]
    assert "/creators/alpha-one/" in popular
    assert "15 coins this week" in popular
    assert alpha.display_name in page
    assert 'href="/creators/"' in client.get("/").content.decode()  # linked from the landing


@pytest.mark.django_db
def test_directory_with_no_match_says_so(client):
    make_creator("someone")
    page = client.get("/creators/?q=nobody-at-all").content.decode()
    assert "No creator matches" in page
