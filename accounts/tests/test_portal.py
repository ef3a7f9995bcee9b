"""Portal sign-up, log-in and log-out: every ``next`` stays on this site."""

import pytest
from django.test import Client

from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

ELSEWHERE = [
    "https://elsewhere.example/",
    "//elsewhere.example/path",
    "http://testserver@elsewhere.example/",
    "https:///elsewhere.example",
    "javascript:alert(1)",
    "\\\\elsewhere.example",
]


def _signup(client: Client, next_url: str, username: str = "newfan"):
    return client.post(
        "/signup/?next=" + next_url,
        {
            "username": username,
            "email": f"{username}@example.com",
            "date_of_birth": "1990-05-05",
            "password": "a-long-unusual-passphrase",
        },
    )


@pytest.mark.parametrize("target", ELSEWHERE)
def test_signup_never_redirects_to_another_site(target):
    response = _signup(Client(), target)
    assert response.status_code == 302
    assert response["Location"] == "/recharge/"


def test_signup_follows_a_next_on_this_site():
    response = _signup(Client(), "/creators/star/")
    assert response["Location"] == "/creators/star/"


@pytest.mark.parametrize("target", ELSEWHERE)
def test_login_never_redirects_to_another_site(target):
    user = UserFactory()
    response = Client().post(
        "/login/?next=" + target,
        {"username": user.username, "password": PASSWORD, "next": target},
    )
    assert response.status_code == 302
    assert response["Location"] == "/wallet/"


def test_login_follows_a_next_on_this_site():
    user = UserFactory()
    response = Client().post(
        "/login/", {"username": user.username, "password": PASSWORD, "next": "/recharge/"}
    )
    assert response["Location"] == "/recharge/"


@pytest.mark.parametrize("target", ELSEWHERE)
def test_logout_never_redirects_to_another_site(target):
    client = Client()
    client.force_login(UserFactory())
    response = client.post("/logout/?next=" + target, {"next": target})
    assert response.status_code == 302
    assert response["Location"] == "/"
