"""The Python reference of sending a gift: the SQLite path (``make run``) and the readable
specification of the PostgreSQL function (the gift tests run against both)."""

from __future__ import annotations

from datetime import UTC, date
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.errors import DomainError, InvalidInput
from gifts.goals import goal_id_clean, goal_lock_for_gift
from gifts.models import GiftEvent
from gifts.services.errors import DailyLimitExceeded
from gifts.services.rules import _ledger_key, _validate, _wallet_coins, diamonds_for
from notifications.webhooks import webhook_event_emit
from wallets.models import Account, AccountKind, TransactionKind
from wallets.services import (
    Posting,
    SpendingLimitExceeded,
    ledger_post,
    platform_account,
    spending_limits_effective,
)

if TYPE_CHECKING:
    from accounts.models import User


def _existing_event(key: str) -> GiftEvent | None:
    event = (
        GiftEvent.objects.select_related("gift", "creator")
        .filter(transaction__idempotency_key=key)
        .first()
    )
    if event is not None:
        event.created = False
        event.wallet_coins = _wallet_coins(event.sender_id)
    return event


def _daily_spend_add(*, user_id: int, day: date, coins: int) -> None:
    """Count ``coins`` against today's limit in one conditional upsert (PostgreSQL, SQLite).

    The limit is the platform's or the sender's own lower one; the sender's own monthly limit
    is checked on the month's total right after (this day's row is locked by the upsert, and
    the sender's wallet row by the debit, so one sender's gifts are counted one by one).
    """
    own = spending_limits_effective(user_id=user_id)
    limit = settings.DAILY_GIFT_LIMIT
    refusal: DomainError = DailyLimitExceeded()
    if own.daily is not None and own.daily < limit:
        limit = own.daily
        refusal = SpendingLimitExceeded(
            f"This gift would go over your own daily limit of {limit:,} coins."
        )
    if coins > limit:
        raise refusal
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO gifts_dailygiftspend (user_id, day, coins) VALUES (%s, %s, %s) "
            "ON CONFLICT (user_id, day) DO UPDATE "
            "SET coins = gifts_dailygiftspend.coins + excluded.coins "
            "WHERE gifts_dailygiftspend.coins + excluded.coins <= %s RETURNING coins",
            [user_id, day, coins, limit],
        )
        if cursor.fetchone() is None:
            raise refusal
        if own.monthly is not None:
            cursor.execute(
                "SELECT COALESCE(SUM(coins), 0) FROM gifts_dailygiftspend "
                "WHERE user_id = %s AND day >= %s AND day <= %s",
                [user_id, day.replace(day=1), day],
            )
            if cursor.fetchone()[0] > own.monthly:
                raise SpendingLimitExceeded(
                    f"This gift would go over your own monthly limit of {own.monthly:,} coins."
                )


def _tally_add(*, creator_id: int, sender_id: int, day: date, coins: int, diamonds: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO gifts_gifttally (creator_id, sender_id, day, coins, diamonds, gifts) "
            "VALUES (%s, %s, %s, %s, %s, 1) "
            "ON CONFLICT (creator_id, day, sender_id) DO UPDATE SET "
            "coins = gifts_gifttally.coins + excluded.coins, "
            "diamonds = gifts_gifttally.diamonds + excluded.diamonds, "
            "gifts = gifts_gifttally.gifts + 1",
            [creator_id, sender_id, day, coins, diamonds],
        )


# What a gift needs of the creator, its user (may they receive?) and the pending account.
@transaction.atomic
def gift_send_python(
    *,
    sender: User,
    creator_handle: str,
    gift_slug: str,
    quantity: int = 1,
    live_id: str | None = None,
    video_id: str | None = None,
    message: str = "",
    client_key: str,
    country: str | None = None,
    goal: int | None = None,
) -> GiftEvent:
    """The reference implementation of ``gift_send`` (and the SQLite path)."""
    key = _ledger_key(sender.pk, client_key)
    goal_id = goal_id_clean(goal)
    try:
        (quantity, live_id, video_id, message, creator, gift, wallet, spent, issuance) = _validate(
            sender=sender,
            creator_handle=creator_handle,
            gift_slug=gift_slug,
            quantity=quantity,
            live_id=live_id,
            video_id=video_id,
            message=message,
            country=country,
        )
        # The goal is share-locked before the wallet (ledger_post), the order goal_settle
        # takes them in.
        locked_goal = (
            goal_lock_for_gift(goal_id=goal_id, creator_id=creator.pk, now=timezone.now())
            if goal_id is not None
            else None
        )
    except DomainError:
        # A retry of a gift that went through answers with that gift, even if a rule
        # (an expired gift, a frozen wallet) would refuse it now.
        existing = _existing_event(key)
        if existing is not None:
            return existing
        raise

    coins = gift.coins * quantity
    diamonds = diamonds_for(coins)
    if locked_goal is not None and locked_goal.all_or_nothing:
        # Held until the deadline: the diamonds are credited only if the goal is met.
        postings = [
            Posting(wallet, -coins),
            Posting(platform_account(AccountKind.GOAL_HOLDING), coins),
        ]
    else:
        postings = [
            Posting(wallet, -coins),
            Posting(spent, coins),
            Posting(issuance, -diamonds),
            # _validate refused a creator without a pending account.
            Posting(cast(Account, creator.pending_account), diamonds),
        ]
    result = ledger_post(
        kind=TransactionKind.GIFT,
        idempotency_key=key,
        postings=postings,
        actor=sender,
        memo=f"{quantity} x {gift.name} to @{creator.handle}",
        reference=f"creator:{creator.pk}",
    )
    if not result.created:
        existing = _existing_event(key)
        if existing is None:  # the key belongs to something else: never double-spend it
            raise InvalidInput("This client key was already used.")
        return existing

    now = result.transaction.created_at
    day = now.astimezone(UTC).date()
    _daily_spend_add(user_id=sender.pk, day=day, coins=coins)
    event = GiftEvent.objects.create(
        sender=sender,
        creator=creator,
        gift=gift,
        quantity=quantity,
        coins=coins,
        diamonds=diamonds,
        live_id=live_id,
        video_id=video_id,
        message=message,
        goal_id=goal_id,
        transaction=result.transaction,
        created_at=now,
    )
    _tally_add(creator_id=creator.pk, sender_id=sender.pk, day=day, coins=coins, diamonds=diamonds)
    webhook_event_emit(
        user_id=creator.user_id,
        type="gift.received",
        key=f"gift.received:{event.pk}",
        data={
            "id": event.pk,
            "sender": sender.username,
            "gift": gift.slug,
            "quantity": quantity,
            "coins": coins,
            "diamonds": diamonds,
            "live_id": live_id,
            "video_id": video_id,
            "message": message,
            "goal": goal_id,
        },
    )
    event.created = True
    event.wallet_coins = result.balances.get(wallet.pk, 0)
    return event
