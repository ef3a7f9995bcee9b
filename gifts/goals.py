"""Creator goals: create them, read their progress, settle them at the deadline (issue #19).

A goal is a target in coins by a deadline, for one live stream (``live_id``) or a period.
Gifts sent with ``goal`` count toward it (``gifts.services.gift_send``). Progress is the sum
of those gift events' coins: a gift never writes the goal row (one goal is as hot as its
creator), it share-locks it (``FOR KEY SHARE``, which does not make gifts wait for each
other) and checks it is still open.

All-or-nothing goals: a gift's coins go to the ledger's goal holding account instead of
becoming the creator's diamonds. At the deadline ``goal_settle`` (Celery beat, every minute)
locks the goal ``FOR UPDATE`` (waiting for gifts already under way, refusing later ones with
409 ``goal_closed``) and, in the same database transaction, posts ONE ledger transaction:
met → the held coins become coins spent and the creator's pending diamonds; missed → every
gifter gets their coins back. Its idempotency key is the goal's (``goal-met:<id>`` /
``goal-refund:<id>``) and the goal's status changes in the same commit, so a rerun, a second
worker beside the first or a worker killed halfway (its transaction rolls back) can never pay
or refund twice. docs/goals.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts.audit import audit_record
from config.errors import DomainError, InvalidInput, NotFound
from gifts.models import GiftEvent, Goal, GoalStatus
from notifications.webhooks import webhook_event_emit
from wallets.models import Account, AccountKind, TransactionKind
from wallets.services import Posting, account_get, ledger_post, platform_account

if TYPE_CHECKING:
    from accounts.models import User
    from creators.models import Creator


log = logging.getLogger(__name__)

TITLE_MAX = 120
DESCRIPTION_MAX = 300
TARGET_MAX = 1_000_000_000


class GoalNotFound(NotFound):
    code = "goal_not_found"
    default_message = "This creator has no goal with that id."


class GoalClosed(DomainError):
    code = "goal_closed"
    status = 409
    default_message = "This goal is closed: its deadline has passed."


class TooManyGoals(DomainError):
    code = "too_many_goals"
    status = 409
    default_message = "You have too many open goals: wait for one to end first."


def _goal_settings() -> tuple[int, int, int]:
    return (
        getattr(settings, "GOAL_DEADLINE_MAX_DAYS", 90),
        getattr(settings, "GOAL_DEADLINE_MIN_MINUTES", 5),
        getattr(settings, "GOALS_OPEN_MAX", 20),
    )


@transaction.atomic
def goal_create(
    *,
    creator: Creator,
    actor: User,
    title: str,
    target_coins: int,
    deadline: datetime,
    live_id: str = "",
    description: str = "",
    all_or_nothing: bool = False,
) -> Goal:
    """A new open goal for ``creator``, set by ``actor`` (the creator) and audited."""
    from gifts.services import CONTEXT_ID_RE

    max_days, min_minutes, open_max = _goal_settings()
    title = " ".join((title or "").split())
    description = " ".join((description or "").split())
    live_id = (live_id or "").strip()
    fields: dict[str, list[str]] = {}
    if not title or len(title) > TITLE_MAX:
        fields["title"] = [f"1 to {TITLE_MAX} characters."]
    if len(description) > DESCRIPTION_MAX:
        fields["description"] = [f"At most {DESCRIPTION_MAX} characters."]
    if isinstance(target_coins, bool) or not isinstance(target_coins, int):
        fields["target_coins"] = ["A whole number of coins."]
    elif not 1 <= target_coins <= TARGET_MAX:
        fields["target_coins"] = [f"Between 1 and {TARGET_MAX:,} coins."]
    now = timezone.now()
    if not isinstance(deadline, datetime) or timezone.is_naive(deadline):
        fields["deadline"] = ["A date and time with its time zone."]
    elif deadline < now + timedelta(minutes=min_minutes):
        fields["deadline"] = [f"At least {min_minutes} minutes from now."]
    elif deadline > now + timedelta(days=max_days):
        fields["deadline"] = [f"At most {max_days} days from now."]
    if live_id and not CONTEXT_ID_RE.match(live_id):
        fields["live_id"] = ["1-64 letters, digits, '_', '.', ':' or '-'."]
    if fields:
        raise InvalidInput("The goal is not valid.", fields=fields)
    # One creator's goals are created one at a time (the creator row's lock), so the count
    # below cannot be passed by two requests at once.
    list(type(creator).objects.select_for_update().filter(pk=creator.pk).values_list("pk"))
    if Goal.objects.filter(creator=creator, status=GoalStatus.OPEN).count() >= open_max:
        raise TooManyGoals()
    goal = Goal.objects.create(
        creator=creator,
        title=title,
        description=description,
        target_coins=target_coins,
        deadline=deadline,
        live_id=live_id,
        all_or_nothing=bool(all_or_nothing),
    )
    audit_record(
        actor=actor,
        action="goal_created",
        obj=goal,
        after={
            "title": title,
            "target_coins": target_coins,
            "deadline": deadline.isoformat(),
            "live_id": live_id,
            "all_or_nothing": goal.all_or_nothing,
        },
    )
    return goal


# --- Reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoalProgress:
    """What a progress bar needs (API, creator page, overlay, the creator's control room)."""

    id: int
    title: str
    description: str
    target_coins: int
    raised_coins: int
    deadline: datetime
    live_id: str
    all_or_nothing: bool
    status: str
    gifts: int

    @property
    def percent(self) -> int:
        """0-100, for the bar's width (the number shown is ``raised_coins``)."""
        return min(100, self.raised_coins * 100 // self.target_coins) if self.target_coins else 0

    @property
    def reached(self) -> bool:
        return self.raised_coins >= self.target_coins

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "target_coins": self.target_coins,
            "raised_coins": self.raised_coins,
            "deadline": self.deadline.isoformat(),
            "live_id": self.live_id,
            "all_or_nothing": self.all_or_nothing,
            "status": self.status,
            "percent": self.percent,
        }


def goals_progress(
    *,
    creator_id: int,
    live_id: str | None = None,
    open_only: bool = False,
    goal_ids: list[int] | None = None,
    limit: int = 50,
) -> list[GoalProgress]:
    """A creator's goals with their progress, newest deadline first: two indexed queries.

    ``live_id`` given: the goals of that live plus the creator's period goals (no live_id),
    which every live shows. ``goal_ids``: only those.
    """
    goals = Goal.objects.filter(creator_id=creator_id)
    if live_id is not None:
        goals = goals.filter(Q(live_id=live_id) | Q(live_id=""))
    if open_only:
        goals = goals.filter(status=GoalStatus.OPEN)
    if goal_ids is not None:
        goals = goals.filter(pk__in=goal_ids)
    rows = list(goals.order_by("-deadline", "-pk")[:limit])
    totals = {
        row["goal_id"]: (row["coins"] or 0, row["gifts"])
        for row in GiftEvent.objects.filter(goal_id__in=[g.pk for g in rows])
        .values("goal_id")
        .annotate(coins=Sum("coins"), gifts=Count("id"))
    }
    return [
        GoalProgress(
            id=g.pk,
            title=g.title,
            description=g.description,
            target_coins=g.target_coins,
            raised_coins=totals.get(g.pk, (0, 0))[0],
            deadline=g.deadline,
            live_id=g.live_id,
            all_or_nothing=g.all_or_nothing,
            status=g.status,
            gifts=totals.get(g.pk, (0, 0))[1],
        )
        for g in rows
    ]


def goal_progress(*, goal_id: int) -> GoalProgress | None:
    goal = Goal.objects.filter(pk=goal_id).values_list("creator_id", flat=True).first()
    if goal is None:
        return None
    found = goals_progress(creator_id=goal, goal_ids=[goal_id])
    return found[0] if found else None


# --- Sending a gift toward a goal (the Python reference; gift_send_v4 does the same) ----------


def goal_lock_for_gift(*, goal_id: int, creator_id: int, now: datetime) -> Goal:
    """The goal a gift counts toward, share-locked until the gift commits; refusals as 4xx.

    ``FOR KEY SHARE`` lets many gifts to one goal go at once but makes ``goal_settle``'s
    ``FOR UPDATE`` wait for them, and a gift arriving after it sees the closed status.
    """
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    sql = f"SELECT id, creator_id, all_or_nothing, status, deadline FROM gifts_goal WHERE id = %s{lock}"  # noqa: S608 (lock is one of two constants)
    with connection.cursor() as cursor:
        cursor.execute(sql, [goal_id])
        row = cursor.fetchone()
    if row is None or row[1] != creator_id:
        raise GoalNotFound(fields={"goal": ["This creator has no goal with that id."]})
    goal = Goal(id=row[0], creator_id=row[1], all_or_nothing=row[2], status=row[3])
    deadline = row[4]
    if isinstance(deadline, str):  # SQLite hands back text
        deadline = datetime.fromisoformat(deadline)
    if timezone.is_naive(deadline):
        deadline = timezone.make_aware(deadline, timezone.get_current_timezone())
    goal.deadline = deadline
    if goal.status != GoalStatus.OPEN or deadline <= now:
        raise GoalClosed(fields={"goal": ["This goal is closed."]})
    return goal


def goal_id_clean(goal: object) -> int | None:
    if goal is None or goal == "":
        return None
    if isinstance(goal, bool) or not isinstance(goal, int) or not 1 <= goal <= 2**62:
        raise InvalidInput("goal is a goal id.", fields={"goal": ["A goal id."]})
    return goal


# --- Settling at the deadline ---------------------------------------------------------------


@dataclass(frozen=True)
class Settled:
    goal_id: int
    status: str
    coins: int
    moved: bool  # this call closed it (False: already closed, or not due)


@transaction.atomic
def goal_settle(*, goal_id: int, now: datetime | None = None) -> Settled:
    """Close one goal whose deadline has passed; for all-or-nothing, move the held coins.

    Safe to run twice and beside itself: the goal row is locked ``FOR UPDATE`` (gifts under
    way finish first; later ones see it closed), a closed goal is left alone, and the money
    moves in the same commit as the status, under the goal's own idempotency key.
    """
    now = now or timezone.now()
    goal = (
        Goal.objects.select_for_update(of=("self",))
        .filter(pk=goal_id)
        .select_related("creator")
        .first()
    )
    if goal is None or goal.status != GoalStatus.OPEN or goal.deadline > now:
        status = goal.status if goal else "missing"
        raised = (goal.raised_at_close or 0) if goal else 0
        return Settled(goal_id, status, raised, False)
    totals = GiftEvent.objects.filter(goal=goal).aggregate(
        coins=Sum("coins"), diamonds=Sum("diamonds")
    )
    coins, diamonds = totals["coins"] or 0, totals["diamonds"] or 0
    met = coins >= goal.target_coins
    if goal.all_or_nothing and coins:
        holding = platform_account(AccountKind.GOAL_HOLDING)
        if met:
            result = ledger_post(
                kind=TransactionKind.GOAL_MET,
                idempotency_key=f"goal-met:{goal.pk}",
                postings=[
                    Posting(holding, -coins),
                    Posting(platform_account(AccountKind.COINS_SPENT), coins),
                    Posting(platform_account(AccountKind.DIAMOND_ISSUANCE), -diamonds),
                    Posting(_pending_account(goal.creator), diamonds),
                ],
                memo=f"Goal met: {goal.title}"[:500],
                reference=f"goal:{goal.pk}",
            )
        else:
            result = ledger_post(
                kind=TransactionKind.GOAL_REFUND,
                idempotency_key=f"goal-refund:{goal.pk}",
                postings=[Posting(holding, -coins), *_refund_postings(goal)],
                memo=f"Goal missed, coins returned: {goal.title}"[:500],
                reference=f"goal:{goal.pk}",
            )
        goal.settlement = result.transaction
    goal.status = GoalStatus.MET if met else GoalStatus.MISSED
    goal.raised_at_close = coins
    goal.settled_at = now
    goal.save(update_fields=["status", "raised_at_close", "settled_at", "settlement"])
    webhook_event_emit(
        user_id=goal.creator.user_id,
        type=f"goal.{goal.status}",
        key=f"goal.{goal.status}:{goal.pk}",
        data={
            "id": goal.pk,
            "title": goal.title,
            "target_coins": goal.target_coins,
            "raised_coins": coins,
            "all_or_nothing": goal.all_or_nothing,
            "status": goal.status,
            "deadline": goal.deadline,
        },
    )
    log.info("goal %s %s with %s of %s coins", goal.pk, goal.status, coins, goal.target_coins)
    return Settled(goal.pk, goal.status, coins, True)


def _pending_account(creator: Creator) -> Account:
    if creator.pending_account_id:
        return Account.objects.get(pk=creator.pending_account_id)
    return account_get(kind=AccountKind.DIAMONDS_PENDING, user=creator.user)


def _refund_postings(goal: Goal) -> list[Posting]:
    """One credit per gifter: the coins of all their gifts toward ``goal``."""
    by_sender = dict(
        GiftEvent.objects.filter(goal=goal)
        .values("sender_id")
        .annotate(coins=Sum("coins"))
        .values_list("sender_id", "coins")
    )
    wallets = {
        a.user_id: a
        for a in Account.objects.filter(kind=AccountKind.WALLET, user_id__in=list(by_sender))
    }
    return [Posting(wallets[sender_id], coins) for sender_id, coins in sorted(by_sender.items())]


def goals_settle_due(*, now: datetime | None = None, limit: int = 500) -> list[Settled]:
    """Settle every open goal whose deadline has passed, one database transaction each."""
    now = now or timezone.now()
    due = list(
        Goal.objects.filter(status=GoalStatus.OPEN, deadline__lte=now)
        .order_by("deadline", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    return [goal_settle(goal_id=goal_id, now=now) for goal_id in due]
