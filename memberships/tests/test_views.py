"""Portal: tiers with a Join button on the creator page, /wallet/memberships/ to see and
cancel, the tier editor on the creator dashboard."""

import re

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from gifts.tests.factories import fund, make_creator
from memberships.models import Membership, MembershipStatus, Tier
from memberships.tests.factories import join, make_tier
from wallets.models import Account, AccountKind

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_join_from_the_creator_page_once_per_form():
    creator = make_creator("pagejoin")
    tier = make_tier(creator, name="Gold", coins=100, perks="Emotes")
    viewer = fund(UserFactory(), 1000)
    client = logged_in(viewer)
    page = client.get("/creators/pagejoin/").content.decode()
    assert "Gold" in page
    assert "Emotes" in page
    assert f'data-join="{tier.pk}"' in page
    assert "Most loyal this week" in page
    key = re.search(r'name="client_key" value="([^"]+)"', page).group(1)
    for _ in range(2):  # a double submit of the same form
        answer = client.post("/creators/pagejoin/join/", {"tier": tier.pk, "client_key": key})
        assert answer.status_code == 302
        assert answer["Location"] == "/wallet/memberships/"
    assert Account.objects.get(kind=AccountKind.WALLET, user=viewer).balance == 900
    listing = client.get("/wallet/memberships/").content.decode()
    assert "@pagejoin" in listing
    assert "Gold" in listing
    assert 'data-status="active"' in listing
    assert "Your tier" in client.get("/creators/pagejoin/").content.decode()
    # Anonymous visitors see the tiers with a log-in link.
    assert "Log in to join" in Client().get("/creators/pagejoin/").content.decode()


def test_cancel_from_the_wallet_page_and_nobody_elses():
    creator = make_creator("pagecancel")
    tier = make_tier(creator, coins=100)
    viewer = fund(UserFactory(), 1000)
    membership = join(viewer, creator, tier).membership
    other = logged_in(UserFactory())
    other.post(f"/wallet/memberships/{membership.pk}/cancel/")
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE
    answer = logged_in(viewer).post(f"/wallet/memberships/{membership.pk}/cancel/")
    assert answer.status_code == 302
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.CANCELLED


def test_the_dashboard_edits_tiers_and_shows_members_and_income():
    creator = make_creator("dash")
    client = logged_in(creator.user)
    added = client.post(
        "/creator/tiers/", {"name": "Fans", "coins_per_month": "200", "perks": "Badge"}
    )
    assert added.status_code == 302
    tier = Tier.objects.get(creator=creator)
    join(fund(UserFactory(), 1000), creator, tier)
    page = client.get("/creator/").content.decode()
    assert f'data-tier-form="{tier.pk}"' in page
    assert re.search(r'data-tiers="members">1<', page)
    assert re.search(r'data-tiers="monthly">200<', page)
    client.post(f"/creator/tiers/{tier.pk}/", {"name": "Fans+", "coins_per_month": "250"})
    tier.refresh_from_db()
    assert (tier.name, tier.coins_per_month) == ("Fans+", 250)
    assert tier.price_effective_at is not None
    # Another creator cannot edit it.
    intruder = make_creator("intruder")
    logged_in(intruder.user).post(f"/creator/tiers/{tier.pk}/", {"name": "x", "coins_per_month": 1})
    tier.refresh_from_db()
    assert tier.name == "Fans+"
    assert Membership.objects.count() == 1
