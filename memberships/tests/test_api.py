"""The memberships API as PRODUCT.md's second-round table says: tiers, join, gift, mine,
cancel; errors in the documented format; another person's objects are 404."""

import pytest

from accounts.tests.factories import UserFactory
from gifts.tests.factories import fund, make_creator
from memberships.models import Membership, MembershipCharge
from memberships.tests.factories import make_tier
from tests.helpers import client_for, idem
from wallets.models import Account, AccountKind
from wallets.services import wallet_freeze

pytestmark = pytest.mark.django_db


def coins_of(user) -> int:
    return Account.objects.get(kind=AccountKind.WALLET, user=user).balance


def test_creator_sets_up_tiers_and_sees_members():
    creator = make_creator("tierboss")
    api = client_for(creator.user)
    created = api.post(
        "/api/v1/creators/me/tiers/",
        {"name": "Fan club", "coins_per_month": 100, "perks": "Badge"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    tier = created.json()
    assert {k: tier[k] for k in ("name", "coins_per_month", "perks", "members")} == {
        "name": "Fan club",
        "coins_per_month": 100,
        "perks": "Badge",
        "members": 0,
    }
    viewer = fund(UserFactory(), 500)
    joined = client_for(viewer).post(
        "/api/v1/creators/tierboss/memberships/", {"tier": tier["id"]}, format="json", **idem()
    )
    assert joined.status_code == 201
    mine = api.get("/api/v1/creators/me/tiers/").json()["results"]
    assert mine[0]["members"] == 1
    assert mine[0]["monthly_coins"] == 100
    patched = api.patch(
        f"/api/v1/creators/me/tiers/{tier['id']}/", {"coins_per_month": 150}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["coins_per_month"] == 150
    assert patched.json()["price_effective_at"] is not None
    # Public list.
    public = UserFactory()
    listed = client_for(public).get("/api/v1/creators/tierboss/tiers/").json()["results"]
    assert [(t["name"], t["members"]) for t in listed] == [("Fan club", 1)]
    # The member is told what the next renewal costs.
    membership = client_for(viewer).get("/api/v1/memberships/").json()["results"][0]
    assert membership["renewal"]["coins"] == 150
    assert membership["renewal"]["price_changes"]


def test_tier_limit_and_validation_errors():
    creator = make_creator("limits")
    api = client_for(creator.user)
    for n in range(3):
        assert (
            api.post(
                "/api/v1/creators/me/tiers/",
                {"name": f"T{n}", "coins_per_month": 10},
                format="json",
            ).status_code
            == 201
        )
    fourth = api.post("/api/v1/creators/me/tiers/", {"name": "T4", "coins_per_month": 10})
    assert fourth.status_code == 409
    assert fourth.json()["error"]["code"] == "tier_limit"
    bad = api.post("/api/v1/creators/me/tiers/", {"name": "", "coins_per_month": 0})
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"name", "coins_per_month"}
    not_creator = client_for(UserFactory()).get("/api/v1/creators/me/tiers/")
    assert not_creator.status_code == 404
    assert not_creator.json()["error"]["code"] == "not_a_creator"


def test_another_creators_tier_and_another_members_membership_are_404():
    alice = make_creator("alice")
    tier = make_tier(alice, coins=10)
    bob = make_creator("bobby")
    patched = client_for(bob.user).patch(
        f"/api/v1/creators/me/tiers/{tier.pk}/", {"name": "mine now"}, format="json"
    )
    assert patched.status_code == 404
    tier.refresh_from_db()
    assert tier.name != "mine now"
    # A tier of another creator cannot be joined through this one.
    viewer = fund(UserFactory(), 100)
    make_tier(bob, coins=10)
    wrong = client_for(viewer).post(
        "/api/v1/creators/bobby/memberships/", {"tier": tier.pk}, format="json", **idem()
    )
    assert wrong.status_code == 404
    assert wrong.json()["error"]["code"] == "tier_not_found"
    joined = client_for(viewer).post(
        "/api/v1/creators/alice/memberships/", {"tier": tier.pk}, format="json", **idem()
    )
    membership_id = joined.json()["id"]
    intruder = client_for(UserFactory())
    assert intruder.delete(f"/api/v1/memberships/{membership_id}/").status_code == 404
    assert intruder.get(f"/api/v1/memberships/{membership_id}/").status_code == 404
    assert Membership.objects.get(pk=membership_id).status == "active"


def test_join_is_idempotent_and_cancel_runs_to_period_end():
    creator = make_creator("joinme")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    api = client_for(viewer)
    headers = idem()
    first = api.post(
        "/api/v1/creators/joinme/memberships/", {"tier": tier.pk}, format="json", **headers
    )
    assert first.status_code == 201
    body = first.json()
    assert {k: body[k] for k in ("creator", "tier", "status", "months")} == {
        "creator": "joinme",
        "tier": tier.pk,
        "status": "active",
        "months": 1,
    }
    again = api.post(
        "/api/v1/creators/joinme/memberships/", {"tier": tier.pk}, format="json", **headers
    )
    assert again.status_code == 201
    assert again.json() == body
    assert coins_of(viewer) == 900
    conflict = api.post(
        "/api/v1/creators/joinme/memberships/", {"tier": tier.pk, "gift_to": ["x"]}, **headers
    )
    assert conflict.status_code == 409
    cancelled = api.delete(f"/api/v1/memberships/{body['id']}/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["current_period_end"] == body["current_period_end"]
    assert cancelled.json()["renewal"] is None
    listed = api.get("/api/v1/memberships/").json()
    assert [m["status"] for m in listed["results"]] == ["cancelled"]
    assert listed["next"] is None


def test_join_errors_are_documented_codes():
    creator = make_creator("errs")
    tier = make_tier(creator, coins=100)
    poor = client_for(fund(UserFactory(), 10))
    url = "/api/v1/creators/errs/memberships/"
    broke = poor.post(url, {"tier": tier.pk}, format="json", **idem())
    assert broke.status_code == 402
    assert broke.json()["error"]["code"] == "insufficient_funds"
    no_key = poor.post(url, {"tier": tier.pk}, format="json")
    assert no_key.status_code == 400
    frozen_user = fund(UserFactory(), 1000)
    wallet_freeze(user=frozen_user, reason="test")
    frozen = client_for(frozen_user).post(url, {"tier": tier.pk}, format="json", **idem())
    assert frozen.status_code == 423
    assert frozen.json()["error"]["code"] == "wallet_frozen"
    missing = poor.post("/api/v1/creators/nobody/memberships/", {"tier": 1}, **idem())
    assert missing.status_code == 404
    garbage = poor.post(url, {"tier": "abc"}, format="json", **idem())
    assert garbage.status_code == 400
    assert not Membership.objects.exists()


@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP"])
def test_gift_memberships_through_the_api(currency):
    """Coins bought in any currency pay gift memberships the same way (coins are coins)."""
    from wallets.services import recharge_create

    creator = make_creator(f"giftapi{currency.lower()}")
    tier = make_tier(creator, coins=100)
    gifter = UserFactory()
    recharge = recharge_create(
        user=gifter, currency=currency, coins=500, payment_method="pm_card_visa"
    )
    assert recharge.status == "succeeded"
    assert str(recharge.price.currency) == currency
    UserFactory(username=f"fan1{currency}")
    UserFactory(username=f"fan2{currency}")
    answer = client_for(gifter).post(
        f"/api/v1/creators/{creator.handle}/memberships/",
        {"tier": tier.pk, "gift_to": [f"fan1{currency}", f"fan2{currency}"]},
        format="json",
        **idem(),
    )
    assert answer.status_code == 201, answer.json()
    results = answer.json()["results"]
    assert [r["months"] for r in results] == [1, 1]
    assert {r["renews"] for r in results} == {False}
    assert coins_of(gifter) == 300
    assert MembershipCharge.objects.filter(payer=gifter).count() == 2
    unknown = client_for(gifter).post(
        f"/api/v1/creators/{creator.handle}/memberships/",
        {"tier": tier.pk, "gift_to": ["ghost"]},
        format="json",
        **idem(),
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_recipient"
    assert "gift_to" in unknown.json()["error"]["fields"]
    assert coins_of(gifter) == 300
