"""Issue 21 item 9: where people land after signing in."""

import pytest

from accounts.tests.factories import PASSWORD, UserFactory
from gifts.tests.factories import make_creator


@pytest.mark.django_db
def test_a_creator_who_signs_in_lands_on_the_dashboard(client):
    creator = make_creator("lander")
    response = client.post("/login/", {"username": creator.user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/creator/"


@pytest.mark.django_db
def test_a_viewer_who_signs_in_lands_on_the_wallet(client):
    viewer = UserFactory()
    response = client.post("/login/", {"username": viewer.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/wallet/"


@pytest.mark.django_db
def test_an_explicit_next_still_wins_for_creators(client):
    creator = make_creator("nexter")
    response = client.post(
        f"/login/?next=/creators/{creator.handle}/",
        {"username": creator.user.username, "password": PASSWORD},
    )
    assert response["Location"] == f"/creators/{creator.handle}/"
