"""Goals (issue #19 part 1) and the split shown before paying (part 4), on both gift paths."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from config.errors import DomainError
from gifts.goals import goal_create, goal_settle, goals_progress, goals_settle_due
from gifts.models import GiftEvent, Goal, GoalStatus
from gifts.quote import creator_value_text, gift_quote
from gifts.services import gift_send
from gifts.tasks import goals_settle_due_task
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import client_for, idem
from wallets.ledger_checks import run_checks
from wallets.models import Account, AccountKind, TransactionKind
from wallets.services import account_balance, platform_account, wallet_get

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gift_path")]


@pytest.fixture
def lion():
    return GiftFactory(slug="lion", name="Lion", coins=700)


@pytest.fixture
def rose():
    return GiftFactory(slug="rose", name="Rose", coins=10)


@pytest.fixture
def star():
    return make_creator("star")


def make_goal(creator, *, target=1000, aon=False, live_id="", minutes=60):
    return goal_create(
        creator=creator,
        actor=creator.user,
        title="24-hour stream",
        target_coins=target,
        deadline=timezone.now() + timedelta(minutes=minutes),
        live_id=live_id,
        all_or_nothing=aon,
    )


def send(sender, gift="lion", quantity=1, handle="star", **kw):
    return gift_send(
        sender=sender,
        creator_handle=handle,
        gift_slug=gift,
        quantity=quantity,
        client_key=str(uuid.uuid4()),
        **kw,
    )


def pending(creator) -> int:
    return account_balance(Account.objects.get(pk=creator.pending_account_id))


def held() -> int:
    return account_balance(platform_account(AccountKind.GOAL_HOLDING))


def past_deadline(goal):
    Goal.objects.filter(pk=goal.pk).update(deadline=timezone.now() - timedelta(seconds=1))


def ledger_ok():
    failed = [(name, problems) for name, problems in run_checks() if problems]
    assert failed == []


# --- The split ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "price", "creator", "platform"),
    [
        ("USD", "10.01", "3.50", "6.51"),
        ("EUR", "9.31", "3.26", "6.05"),
        ("GBP", "8.05", "2.81", "5.24"),
    ],
)
def test_quote_in_every_currency(api, star, lion, currency, price, creator, platform):
    answer = api.get(f"/api/v1/gifts/quote/?creator=star&gift=lion&currency={currency}")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert (body["coins"], body["diamonds"]) == (700, 700)
    assert body["rate"] == pytest.approx(0.3497)
    assert body["price"] == {"amount": price, "currency": currency}
    assert body["creator_value"] == {"amount": creator, "currency": currency}
    assert body["platform_value"] == {"amount": platform, "currency": currency}
    assert Decimal(creator) + Decimal(platform) == Decimal(price)
    # What the statement will list, in PAYOUT_CURRENCY, whatever the viewer's currency.
    assert body["payout_value"] == {"amount": "3.500", "currency": "USD"}


def test_quote_follows_the_settings(api, settings, star, lion):
    settings.DIAMONDS_PER_COIN_NUM, settings.DIAMONDS_PER_COIN_DEN = 1, 2
    settings.DIAMOND_VALUE = Decimal("0.01")
    body = api.get("/api/v1/gifts/quote/?creator=star&gift=lion&quantity=3").json()
    assert (body["coins"], body["diamonds"]) == (2100, 1050)
    assert body["creator_value"] == {"amount": "10.50", "currency": "USD"}
    assert creator_value_text(gift_quote(coins=2100)) == "the creator receives ≈ $10.50 of this"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("creator=nobody&gift=lion", 404, "creator_not_found"),
        ("creator=star&gift=unicorn", 404, "gift_not_found"),
        ("creator=star&gift=lion&quantity=0", 400, "validation_error"),
        ("creator=star&gift=lion&quantity=10000", 400, "validation_error"),
        ("creator=star&gift=lion&quantity=²", 400, "validation_error"),
        ("creator=star&gift=lion&currency=JPY", 400, "validation_error"),
    ],
)
def test_quote_refuses_bad_input(api, star, lion, query, status, code):
    answer = api.get(f"/api/v1/gifts/quote/?{query}")
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code


def test_send_answers_with_the_creator_value_also_on_replay(star, lion):
    client = client_for(fund(UserFactory(), 2000))
    headers = idem()
    body = {"creator": "star", "gift": "lion", "currency": "EUR"}
    first = client.post("/api/v1/gifts/send/", body, format="json", **headers)
    assert first.status_code == 201, first.json()
    assert first.json()["creator_value"] == {"amount": "3.26", "currency": "EUR"}
    assert first.json()["goal"] is None
    again = client.post("/api/v1/gifts/send/", body, format="json", **headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    default = client.post("/api/v1/gifts/send/", {"creator": "star", "gift": "lion"}, **idem())
    assert default.json()["creator_value"] == {"amount": "3.50", "currency": "USD"}


# --- Goals: the API -----------------------------------------------------------------------------


def test_creator_sets_a_goal_and_anyone_reads_it(api, star):
    client = client_for(star.user)
    deadline = (timezone.now() + timedelta(days=2)).isoformat()
    made = client.post(
        "/api/v1/creators/me/goals/",
        {"title": " 10,000 coins  by Friday ", "target_coins": 10_000, "deadline": deadline},
        format="json",
    )
    assert made.status_code == 201, made.json()
    goal = made.json()
    assert goal["title"] == "10,000 coins by Friday"
    assert (goal["target_coins"], goal["raised_coins"], goal["status"]) == (10_000, 0, "open")
    assert goal["all_or_nothing"] is False
    assert goal["live_id"] == ""
    mine = client.get("/api/v1/creators/me/goals/").json()
    public = api.get("/api/v1/creators/star/goals/").json()
    assert (
        [g["id"] for g in mine["results"]] == [g["id"] for g in public["results"]] == [goal["id"]]
    )
    assert public["next"] is None
    assert api.get("/api/v1/creators/star/goals/?status=met").json()["results"] == []
    assert api.get("/api/v1/creators/nobody/goals/").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "", "target_coins": 10}, "title"),
        ({"title": "x", "target_coins": 0}, "target_coins"),
        ({"title": "x", "target_coins": 10, "deadline": "yesterday"}, "deadline"),
        ({"title": "x", "target_coins": 10, "deadline": "2020-01-01T00:00:00Z"}, "deadline"),
        ({"title": "x", "target_coins": 10, "live_id": "no spaces"}, "live_id"),
    ],
)
def test_goal_input_is_checked(star, body, field):
    body.setdefault("deadline", (timezone.now() + timedelta(hours=1)).isoformat())
    answer = client_for(star.user).post("/api/v1/creators/me/goals/", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()["error"]["fields"]
    assert not Goal.objects.exists()


def test_goals_need_a_creator_and_are_capped(settings, user_api, star):
    assert user_api.get("/api/v1/creators/me/goals/").json()["error"]["code"] == "not_a_creator"
    settings.GOALS_OPEN_MAX = 1
    make_goal(star)
    with pytest.raises(DomainError) as refused:
        make_goal(star)
    assert refused.value.code == "too_many_goals"
    assert Goal.objects.count() == 1


# --- Goals: gifts toward them -------------------------------------------------------------------


def test_gifts_count_toward_a_goal(star, lion, rose):
    goal = make_goal(star, target=1000, live_id="live-1")
    other = make_goal(star, target=50)
    fan = fund(UserFactory(), 5000)
    event = send(fan, goal=goal.pk, live_id="live-1")
    send(fan, gift="rose", quantity=2, goal=goal.pk)
    send(fan, gift="rose")  # toward no goal
    assert event.goal_id == goal.pk
    assert pending(star) == 730  # a normal goal does not hold anything
    progress = {g.id: g for g in goals_progress(creator_id=star.pk, live_id="live-1")}
    assert (progress[goal.pk].raised_coins, progress[goal.pk].percent) == (720, 72)
    assert progress[other.pk].raised_coins == 0  # a period goal shows on every live
    assert goals_progress(creator_id=star.pk, live_id="live-2")[0].id == other.pk
    ledger_ok()


@pytest.mark.parametrize("case", ["another_creator", "unknown", "closed", "settled"])
def test_a_gift_to_a_wrong_goal_moves_nothing(star, lion, case):
    other = make_creator("moon")
    goal = make_goal(other if case == "another_creator" else star, aon=True)
    goal_id = goal.pk + 1000 if case == "unknown" else goal.pk
    if case in ("closed", "settled"):
        past_deadline(goal)
    if case == "settled":
        goal_settle(goal_id=goal.pk)
    fan = fund(UserFactory(), 1000)
    with pytest.raises(DomainError) as refused:
        send(fan, goal=goal_id)
    expected = "goal_closed" if case in ("closed", "settled") else "goal_not_found"
    assert refused.value.code == expected
    assert refused.value.status == (409 if expected == "goal_closed" else 404)
    assert wallet_get(user=fan).balance == 1000
    assert not GiftEvent.objects.exists()
    assert pending(star) == 0


def test_wrong_goal_over_the_api_is_a_clear_4xx(star, lion):
    goal = make_goal(make_creator("moon"))
    client = client_for(fund(UserFactory(), 1000))
    body = {"creator": "star", "gift": "lion", "goal": goal.pk}
    answer = client.post("/api/v1/gifts/send/", body, format="json", **idem())
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "goal_not_found"
    bad = client.post("/api/v1/gifts/send/", {**body, "goal": "x"}, format="json", **idem())
    assert bad.status_code == 400
    assert "goal" in bad.json()["error"]["fields"]
    assert not GiftEvent.objects.exists()


def test_a_retry_after_the_deadline_is_the_first_gift(star, lion):
    goal = make_goal(star, aon=True)
    fan = fund(UserFactory(), 1000)
    args = {"creator_handle": "star", "gift_slug": "lion", "goal": goal.pk, "client_key": "k1"}
    first = gift_send(sender=fan, **args)
    past_deadline(goal)
    again = gift_send(sender=fan, **args)
    assert (again.pk, again.created) == (first.pk, False)
    assert wallet_get(user=fan).balance == 300
    assert held() == 700


# --- All or nothing -----------------------------------------------------------------------------


def test_all_or_nothing_holds_then_pays_the_creator_when_met(star, lion):
    goal = make_goal(star, target=1400, aon=True)
    alice, bob = fund(UserFactory(), 1000), fund(UserFactory(), 1000)
    send(alice, goal=goal.pk)
    send(bob, goal=goal.pk)
    assert (held(), pending(star)) == (1400, 0)
    assert wallet_get(user=alice).balance == 300
    ledger_ok()
    assert goal_settle(goal_id=goal.pk).moved is False  # not due yet
    past_deadline(goal)

    assert goals_settle_due_task() == 1
    goal.refresh_from_db()
    assert (goal.status, goal.raised_at_close) == (GoalStatus.MET, 1400)
    assert goal.settlement.kind == TransactionKind.GOAL_MET
    assert goal.settlement.idempotency_key == f"goal-met:{goal.pk}"
    assert (held(), pending(star)) == (0, 1400)
    ledger_ok()
    # Twice: nothing more moves.
    assert goals_settle_due_task() == 0
    assert goal_settle(goal_id=goal.pk).moved is False
    assert (held(), pending(star)) == (0, 1400)
    ledger_ok()


def test_all_or_nothing_refunds_every_gifter_once_when_missed(star, lion, rose):
    goal = make_goal(star, target=5000, aon=True)
    normal = make_goal(star, target=5000)
    alice, bob = fund(UserFactory(), 1000), fund(UserFactory(), 1000)
    send(alice, goal=goal.pk)
    send(alice, gift="rose", quantity=3, goal=goal.pk)
    send(bob, gift="rose", goal=goal.pk)
    send(bob, gift="rose", goal=normal.pk)
    assert (held(), pending(star)) == (740, 10)
    past_deadline(goal)
    past_deadline(normal)

    settled = {s.goal_id: s for s in goals_settle_due()}
    assert settled[goal.pk].status == GoalStatus.MISSED
    assert settled[goal.pk].coins == 740
    assert settled[normal.pk].status == GoalStatus.MISSED
    goal.refresh_from_db()
    assert goal.settlement.kind == TransactionKind.GOAL_REFUND
    assert wallet_get(user=alice).balance == 1000
    assert wallet_get(user=bob).balance == 990
    assert (held(), pending(star)) == (0, 10)
    ledger_ok()
    assert goals_settle_due() == []
    assert goal_settle(goal_id=goal.pk).moved is False
    assert wallet_get(user=alice).balance == 1000
    ledger_ok()


def test_an_empty_all_or_nothing_goal_is_missed_without_money(star):
    goal = make_goal(star, aon=True)
    past_deadline(goal)
    assert goal_settle(goal_id=goal.pk).status == GoalStatus.MISSED
    goal.refresh_from_db()
    assert goal.settlement is None
    assert goal.settled_at is not None
    ledger_ok()
