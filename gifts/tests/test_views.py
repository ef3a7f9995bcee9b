import pytest

from accounts.tests.factories import UserFactory
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator

pytestmark = pytest.mark.django_db


@pytest.fixture
def star():
    GiftFactory(slug="rose", name="Rose", coins=1)
    creator = make_creator("star")
    sender = fund(UserFactory(username="fan"), 100)
    gift_send(
        sender=sender,
        creator_handle="star",
        gift_slug="rose",
        quantity=7,
        message="yo",
        client_key="1",
    )
    return creator


def test_creator_page_public_and_with_panel(client, star):
    response = client.get("/creators/star/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Star" in html
    assert "Log in" in html
    assert 'id="gift-form"' not in html
    assert 'data-username="fan"' in html
    assert client.get("/creators/nobody/").status_code == 404
    viewer = fund(UserFactory(), 5)
    client.force_login(viewer)
    html = client.get("/creators/star/?period=week").content.decode()
    assert 'id="gift-form"' in html
    assert "/static/gifts/rose.svg" in html
    assert 'aria-current="true">This week' in html


def test_creator_sees_own_page_without_panel(client, star):
    client.force_login(star.user)
    html = client.get("/creators/star/").content.decode()
    assert 'id="gift-form"' not in html
    assert "This is your page" in html


def test_dashboard(client, star):
    client.force_login(star.user)
    response = client.get("/creator/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-earnings="pending">7<' in html
    assert '<rect class="bar bar--muted"' in html  # today's bar
    assert "7 diamonds" in html
    assert "yo" in html


def test_dashboard_needs_login_and_offers_to_become_a_creator(client):
    assert client.get("/creator/").status_code == 302
    user = UserFactory()
    client.force_login(user)
    assert "Become a creator" in client.get("/creator/").content.decode()
    bad = client.post("/creator/start/", {"handle": "x", "display_name": "X"})
    assert bad.status_code == 400
    ok = client.post("/creator/start/", {"handle": "newbie", "display_name": "New Bie"})
    assert ok.status_code == 302
    assert ok["Location"] == "/creator/"
    assert "@newbie" in client.get("/creator/").content.decode()
