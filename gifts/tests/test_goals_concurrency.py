"""All-or-nothing goals under real concurrency on PostgreSQL (issue #19): a gift racing the
deadline, two settlements at once, a worker killed in the middle of one. Conservation is
asserted (every coin is where the ledger says, once), not just "no exception"."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import Error as DatabaseError
from django.db import connection, transaction
from django.utils import timezone

from accounts.tests.factories import UserFactory
from config.errors import DomainError
from gifts.goals import goal_create, goal_settle, goals_settle_due
from gifts.models import GiftEvent, Goal, GoalStatus
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from gifts.tests.test_concurrency import run_threads
from wallets.models import Account, AccountKind, LedgerTransaction
from wallets.services import account_balance, platform_account, wallet_get

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("gift_path"),  # the SQL function and the Python reference
]

FUNDS = 1_000_000


@pytest.fixture
def rose():
    return GiftFactory(slug="rose", name="Rose", coins=3)


@pytest.fixture
def star():
    return make_creator("star")


def aon_goal(creator, target: int) -> Goal:
    return goal_create(
        creator=creator,
        actor=creator.user,
        title="All or nothing",
        target_coins=target,
        deadline=timezone.now() + timedelta(hours=1),
        all_or_nothing=True,
    )


def move_deadline(goal: Goal, seconds: float) -> None:
    Goal.objects.filter(pk=goal.pk).update(deadline=timezone.now() + timedelta(seconds=seconds))


def send(sender, goal: Goal):
    return gift_send(
        sender=sender,
        creator_handle="star",
        gift_slug="rose",
        goal=goal.pk,
        client_key=str(uuid.uuid4()),
    )


def pending(creator) -> int:
    return account_balance(Account.objects.get(pk=creator.pending_account_id))


def held() -> int:
    return account_balance(platform_account(AccountKind.GOAL_HOLDING))


def assert_settled_once(goal: Goal, creator, senders) -> None:
    goal.refresh_from_db()
    assert goal.status != GoalStatus.OPEN
    events = GiftEvent.objects.filter(goal=goal)
    coins = sum(e.coins for e in events)
    assert goal.raised_at_close == coins  # every accepted gift counted, none twice
    assert held() == 0
    settlements = LedgerTransaction.objects.filter(reference=f"goal:{goal.pk}")
    assert settlements.count() == (1 if coins else 0)
    for sender in senders:
        sent = sum(e.coins for e in events if e.sender_id == sender.pk)
        refunded = goal.status == GoalStatus.MISSED
        assert wallet_get(user=sender).balance == FUNDS - (0 if refunded else sent)
    assert pending(creator) == (coins if goal.status == GoalStatus.MET else 0)
    call_command("verify_ledger")


@pytest.mark.parametrize("outcome", ["met", "missed"])
def test_gifts_racing_the_deadline_are_counted_or_refused_never_both(star, rose, outcome):
    goal = aon_goal(star, target=3 if outcome == "met" else 10**9)
    senders = [fund(UserFactory(), FUNDS) for _ in range(4)]
    move_deadline(goal, 0.7)
    refused: list[str] = []

    def work(i):
        if i == len(senders):  # the settling worker: runs until it has closed the goal
            while not goal_settle(goal_id=goal.pk).moved:
                if Goal.objects.get(pk=goal.pk).status != GoalStatus.OPEN:
                    return "closed by another"
                time.sleep(0.02)  # pacing only: no assertion depends on it
            return "settled"
        accepted = 0
        for _ in range(10_000):
            try:
                send(senders[i], goal)
                accepted += 1
            except DomainError as exc:
                refused.append(exc.code)
                return accepted
        raise AssertionError("the goal never closed")

    results = run_threads(len(senders) + 1, work)

    assert results[-1] == "settled"
    assert set(refused) == {"goal_closed"}
    assert len(refused) == len(senders)
    assert GiftEvent.objects.filter(goal=goal).count() == sum(results[:-1]) > 0
    assert_settled_once(goal, star, senders)
    goal.refresh_from_db()
    assert goal.status == outcome


@pytest.mark.parametrize("outcome", ["met", "missed"])
def test_settlement_twice_at_once_moves_the_money_once(star, rose, outcome):
    goal = aon_goal(star, target=6 if outcome == "met" else 1000)
    senders = [fund(UserFactory(), FUNDS) for _ in range(3)]
    for sender in senders:
        send(sender, goal)
    Goal.objects.filter(pk=goal.pk).update(deadline=timezone.now() - timedelta(seconds=1))

    results = run_threads(
        6, lambda i: goal_settle(goal_id=goal.pk) if i % 2 else goals_settle_due()
    )

    moved = [r for r in results[1::2] if r.moved] + [
        s for batch in results[0::2] for s in batch if s.moved
    ]
    assert len(moved) == 1
    assert_settled_once(goal, star, senders)
    goal.refresh_from_db()
    assert goal.status == outcome


@pytest.mark.parametrize("outcome", ["met", "missed"])
def test_a_worker_killed_mid_settlement_changes_nothing_and_the_rerun_converges(
    star, rose, outcome
):
    """The worker is killed (its PostgreSQL backend terminated, as when the process dies)
    while it waits inside the settlement, after locking the goal and summing its gifts."""
    goal = aon_goal(star, target=6 if outcome == "met" else 1000)
    senders = [fund(UserFactory(), FUNDS) for _ in range(3)]
    for sender in senders:
        send(sender, goal)
    Goal.objects.filter(pk=goal.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    key = f"goal-{'met' if outcome == 'met' else 'refund'}:{goal.pk}"

    # Another session claims the settlement's key without committing: the worker's journal
    # insert (ON CONFLICT) waits on it, mid-settlement.
    claimed, release = threading.Event(), threading.Event()

    def blocker():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO wallets_ledgertransaction (kind, idempotency_key, memo, "
                    "reference, created_at) VALUES ('adjustment', %s, 'blocker', '', now())",
                    [key],
                )
                claimed.set()
                release.wait(timeout=90)
                transaction.set_rollback(True)
        finally:
            connection.close()

    blocking = threading.Thread(target=blocker)
    blocking.start()
    assert claimed.wait(timeout=30)
    worker_pid: list[int] = []
    outcome_of_worker: list[object] = []

    def worker():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                worker_pid.append(cursor.fetchone()[0])
            outcome_of_worker.append(goal_settle(goal_id=goal.pk))
        except DatabaseError as exc:  # the connection was killed under it
            outcome_of_worker.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    with connection.cursor() as cursor:
        for _ in range(600):  # until the worker waits on the key (bounded: 60 s)
            cursor.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                [worker_pid[0] if worker_pid else 0],
            )
            row = cursor.fetchone()
            if row and row[0] == "Lock":
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the worker never reached the settlement's key")
        cursor.execute("SELECT pg_terminate_backend(%s)", [worker_pid[0]])
    thread.join(timeout=60)
    release.set()
    blocking.join(timeout=60)

    assert isinstance(outcome_of_worker[0], DatabaseError), outcome_of_worker
    goal.refresh_from_db()
    assert goal.status == GoalStatus.OPEN
    assert goal.settlement is None
    assert held() == 9
    assert pending(star) == 0
    assert not LedgerTransaction.objects.filter(idempotency_key=key).exists()
    call_command("verify_ledger")

    # The next beat: settles it, once.
    assert [s.moved for s in goals_settle_due()] == [True]
    assert goals_settle_due() == []
    assert_settled_once(goal, star, senders)
