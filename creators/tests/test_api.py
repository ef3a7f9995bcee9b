import pytest

from accounts.tests.factories import MinorFactory, UserFactory
from creators.models import Creator
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import client_for
from wallets.models import Account, AccountKind

pytestmark = pytest.mark.django_db


def test_become_a_creator(user_api, user):
    response = user_api.post(
        "/api/v1/creators/", {"handle": "Maya_Makes", "display_name": " Maya  J "}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json() == {"handle": "maya_makes", "display_name": "Maya J"}
    creator = Creator.objects.get(user=user)
    assert creator.pending_account.kind == AccountKind.DIAMONDS_PENDING
    assert Account.objects.filter(user=user, kind=AccountKind.DIAMONDS_AVAILABLE).exists()
    me = user_api.get("/api/v1/me/").json()
    assert me["is_creator"] is True
    assert me["creator_handle"] == "maya_makes"
    again = user_api.post(
        "/api/v1/creators/", {"handle": "other", "display_name": "x"}, format="json"
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_creator"


@pytest.mark.parametrize(
    ("handle", "status", "code"),
    [
        ("taken", 409, "handle_taken"),
        ("TAKEN", 409, "handle_taken"),
        ("admin", 409, "handle_taken"),
        ("a", 400, "validation_error"),
        ("bad handle", 400, "validation_error"),
        ("-dash", 400, "validation_error"),
        ("x" * 31, 400, "validation_error"),
    ],
)
def test_bad_handles(user_api, handle, status, code):
    make_creator("taken")
    response = user_api.post(
        "/api/v1/creators/", {"handle": handle, "display_name": "X"}, format="json"
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_public_profile(api):
    make_creator("star")
    response = api.get("/api/v1/creators/STAR/")
    assert response.status_code == 200
    body = response.json()
    assert body["handle"] == "star"
    assert body["can_receive_gifts"] is True
    assert body["url"].endswith("/creators/star/")
    assert api.get("/api/v1/creators/nobody/").status_code == 404


def test_minor_creator_profile_says_cannot_receive(api):
    make_creator("kid", date_of_birth=MinorFactory.date_of_birth.function())
    assert api.get("/api/v1/creators/kid/").json()["can_receive_gifts"] is False


def test_earnings(user_api, settings):
    settings.DIAMOND_VALUE = __import__("decimal").Decimal("0.005")
    assert user_api.get("/api/v1/creators/me/earnings/").status_code == 404
    GiftFactory(slug="rose", coins=1)
    creator = make_creator("star")
    sender = fund(UserFactory(), 500)
    gift_send(sender=sender, creator_handle="star", gift_slug="rose", quantity=400, client_key="k")
    body = client_for(creator.user).get("/api/v1/creators/me/earnings/").json()
    assert body == {
        "diamonds_pending": 400,
        "diamonds_available": 0,
        "diamonds_in_payout": 0,
        "diamonds_paid": 0,
        "available_value": {"amount": "0.00", "currency": "USD"},
    }


def test_earnings_need_auth(api):
    assert api.get("/api/v1/creators/me/earnings/").status_code == 401
    assert UserFactory()
