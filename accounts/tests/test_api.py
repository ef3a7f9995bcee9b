from datetime import date, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import PASSWORD, UserFactory
from tests.helpers import client_for

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"
ME = "/api/v1/me/"


def _valid(**overrides):
    body = {
        "username": "newviewer",
        "email": "new@example.com",
        "password": "a-long-unusual-passphrase",
        "date_of_birth": "1999-04-02",
    }
    body.update(overrides)
    return body


def _assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)
    return body["error"]


@pytest.mark.django_db
def test_register_returns_user_and_working_token(api):
    response = api.post(REGISTER, _valid(), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["username"] == "newviewer"
    user = get_user_model().objects.get(pk=body["user"]["id"])
    assert user.date_of_birth == date(1999, 4, 2)
    assert user.check_password("a-long-unusual-passphrase")
    api.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    me = api.get(ME).json()
    assert me == {
        "id": user.pk,
        "username": "newviewer",
        "is_creator": False,
        "creator_handle": None,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "has space"}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"password": "123"}, "password"),
        ({"password": "password"}, "password"),
        ({"date_of_birth": "yesterday"}, "date_of_birth"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"date_of_birth": 12}, "date_of_birth"),
        ({"username": ["a"]}, "username"),
    ],
)
def test_register_bad_input_is_400_and_writes_nothing(api, overrides, field):
    before = get_user_model().objects.count()
    error = _assert_error(
        api.post(REGISTER, _valid(**overrides), format="json"), 400, "validation_error"
    )
    assert field in error["fields"]
    assert get_user_model().objects.count() == before


@pytest.mark.django_db
def test_register_duplicate_username_case_insensitive(api):
    UserFactory(username="Taken")
    error = _assert_error(
        api.post(REGISTER, _valid(username="taken"), format="json"), 409, "username_taken"
    )
    assert "username" in error["fields"]


@pytest.mark.django_db
def test_malformed_json_is_400_in_error_format(api):
    response = api.post(REGISTER, data="{not json", content_type="application/json")
    _assert_error(response, 400, "malformed_request")


@pytest.mark.django_db
def test_token_login_and_revoke(api):
    user = UserFactory()
    response = api.post(TOKEN, {"username": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    key = response.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(ME).status_code == 200
    assert api.delete(TOKEN).status_code == 204
    assert not AuthToken.objects.filter(user=user).exists()
    _assert_error(api.get(ME), 401, "authentication_failed")


def _login(user) -> str:
    response = APIClient().post(
        TOKEN, {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _me(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(ME)


@pytest.mark.django_db
def test_each_sign_in_gets_its_own_token_and_logout_revokes_only_that_one():
    user = UserFactory()
    phone, laptop = _login(user), _login(user)
    assert phone != laptop
    assert _me(phone).status_code == 200
    assert _me(laptop).status_code == 200

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {phone}")
    assert client.delete(TOKEN).status_code == 204

    _assert_error(_me(phone), 401, "authentication_failed")
    assert _me(laptop).status_code == 200


@pytest.mark.django_db
def test_tokens_are_stored_hashed_and_expire(settings):
    user = UserFactory()
    key = _login(user)
    stored = AuthToken.objects.get(user=user)
    # Only a digest is stored: a database leak gives no usable token.
    assert key not in {stored.digest, stored.token_key}
    assert len(stored.digest) == 128
    assert stored.expiry is not None
    ttl = stored.expiry - stored.created
    assert abs(ttl.total_seconds() - settings.REST_KNOX["TOKEN_TTL"].total_seconds()) < 60

    AuthToken.objects.filter(pk=stored.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    _assert_error(_me(key), 401, "authentication_failed")
    assert not AuthToken.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_register_token_expires_like_a_login_token():
    response = APIClient().post(REGISTER, _valid(), format="json")
    assert response.status_code == 201
    token = AuthToken.objects.get(user_id=response.json()["user"]["id"])
    assert token.expiry is not None


@pytest.mark.django_db
def test_wrong_password_is_refused(api):
    user = UserFactory()
    response = api.post(TOKEN, {"username": user.username, "password": "nope"}, format="json")
    _assert_error(response, 400, "invalid_credentials")


@pytest.mark.django_db
def test_repeated_failed_logins_are_throttled(api):
    user = UserFactory()
    statuses = [
        api.post(TOKEN, {"username": user.username, "password": "bad"}, format="json").status_code
        for _ in range(25)
    ]
    assert 429 in statuses
    response = api.post(TOKEN, {"username": user.username, "password": PASSWORD}, format="json")
    _assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_anonymous_me_is_401(api):
    _assert_error(api.get(ME), 401, "not_authenticated")


@pytest.mark.django_db
def test_unknown_api_path_and_wrong_method_use_error_format(user):
    client = client_for(user)
    _assert_error(client.get("/api/v1/no-such-thing/"), 404, "not_found")
    _assert_error(client.post(ME, {}, format="json"), 405, "method_not_allowed")
