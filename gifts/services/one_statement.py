"""Sending a gift in one round trip on PostgreSQL: one call of the versioned SQL function,
which checks every rule and writes every row, the creator's ``gift.received`` webhook event
included (``GIFT_SEND_SQL``)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection
from django.utils import timezone

from config.errors import (
    AgeRestricted,
    DomainError,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
)
from gifts.goals import GoalClosed, GoalNotFound, goal_id_clean
from gifts.models import GiftEvent
from gifts.services.errors import (
    CreatorCannotReceive,
    CreatorNotFound,
    DailyLimitExceeded,
    GiftNotFound,
    GiftUnavailable,
    SelfGift,
)
from gifts.services.rules import _check_quantity, _clean_context, _ledger_key, message_clean
from notifications.webhooks import webhook_deliveries_queue
from wallets.services import SpendingLimitExceeded, wallet_frozen_error

if TYPE_CHECKING:
    from accounts.models import User

# The SQL function this code calls. A new rule or argument means a new function (and a new
# migration), never a changed one: during a rolling deploy old code calls the old version.
GIFT_SEND_FUNCTION = "gift_send_v4"
GIFT_SEND_SQL = (
    f"SELECT {GIFT_SEND_FUNCTION}(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s)"
)
# Raised by the function when a refused copy of the same HTTP request stored its answer while
# this one was being sent: everything was rolled back, the stored answer is the answer.
ANSWERED_MEANWHILE = "AP409"


def gift_send_uses_sql() -> bool:
    return settings.GIFT_SEND_SQL and connection.vendor == "postgresql"


@dataclass(frozen=True)
class HttpIdempotency:
    """The API's Idempotency-Key claim, stored by the gift function with its answer."""

    key: str
    request_hash: str
    path: str


@dataclass(frozen=True)
class GiftAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool


def _refusal(answer: dict[str, Any]) -> DomainError:
    code = answer["code"]
    if code == "spending_limit_exceeded":
        return SpendingLimitExceeded(
            f"This gift would go over your own {answer['period']} limit of "
            f"{answer['limit']:,} coins."
        )
    if code == "wallet_frozen":
        return wallet_frozen_error(answer.get("reason") or "")
    if code == "age_restricted":
        return AgeRestricted("You must be 18 or older to send gifts.")
    if code == "client_key_used":
        return InvalidInput("This client key was already used.")
    errors: dict[str, type[DomainError]] = {
        "creator_not_found": CreatorNotFound,
        "self_gift": SelfGift,
        "creator_cannot_receive": CreatorCannotReceive,
        "gift_not_found": GiftNotFound,
        "gift_unavailable": GiftUnavailable,
        "daily_limit_exceeded": DailyLimitExceeded,
        "insufficient_funds": InsufficientFunds,
        "goal_not_found": GoalNotFound,
        "goal_closed": GoalClosed,
    }
    return errors[code]()


def _gift_send_sql(
    *,
    sender: User,
    creator_handle: str,
    gift_slug: str,
    quantity: object,
    live_id: str | None,
    video_id: str | None,
    message: str,
    client_key: str,
    country: str | None,
    http: HttpIdempotency | None,
    goal: int | None = None,
) -> dict[str, Any]:
    """One call of the gift function. Input is checked here first, as the reference does.

    No ``transaction.atomic``: one statement is its own transaction in autocommit, and BEGIN
    and COMMIT would be two more round trips. Inside a caller's transaction it joins it.
    """
    key = _ledger_key(sender.pk, client_key)
    quantity = _check_quantity(quantity)
    live_id, video_id = _clean_context(live_id, video_id)
    message = message_clean(message or "")
    goal_id = goal_id_clean(goal)
    params = [
        sender.pk,
        key,
        (creator_handle or "").strip().lower(),
        (gift_slug or "").strip().lower(),
        quantity,
        live_id,
        video_id,
        message,
        country or None,
        timezone.now(),
        settings.MINIMUM_AGE,
        settings.DAILY_GIFT_LIMIT,
        settings.DIAMONDS_PER_COIN_NUM,
        settings.DIAMONDS_PER_COIN_DEN,
        http.key if http else None,
        http.request_hash if http else None,
        http.path if http else None,
        goal_id,
    ]
    answer = _call_retrying_deadlocks(params)
    if isinstance(answer, str):  # a driver without jsonb loading
        answer = json.loads(answer)
    if answer["result"] == "refused":
        raise _refusal(answer)
    if answer["result"] == "conflict":
        raise IdempotencyConflict()
    # The function stored gift.received for the creator's apps in the same statement; their
    # delivery is queued after the commit (at once in autocommit; no database round trip).
    webhook_deliveries_queue(endpoint_ids=answer.get("webhook_endpoints") or [])
    row: dict[str, Any] = answer
    return row


# PostgreSQL may pick a concurrent gift of the same sender as a deadlock victim (or fail a
# serialisable check): the statement rolled back whole, and in autocommit it is safe to run
# again (the ledger key makes a repeat a replay). Inside a caller's transaction it cannot be.
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure
DEADLOCK_RETRIES = 3


def _call_retrying_deadlocks(params: list[Any]) -> Any:
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return _call(params)
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in RETRYABLE_SQLSTATES or connection.in_atomic_block:
                raise
            time.sleep(random.uniform(0.002, 0.02) * (attempt + 1))  # noqa: S311  # jitter
    return _call(params)  # the last try: its error is the answer


def _call(params: list[Any]) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(GIFT_SEND_SQL, params)
        return cursor.fetchone()[0]


def _event_from_row(row: dict[str, Any], sender: User) -> GiftEvent:
    event = GiftEvent(
        id=row["id"],
        sender=sender,
        creator_id=row["creator_id"],
        gift_id=row["gift_id"],
        quantity=row["quantity"],
        coins=row["coins"],
        diamonds=row["diamonds"],
        live_id=row["live_id"],
        video_id=row["video_id"],
        message=row["message"],
        goal_id=row.get("goal_id"),
        transaction_id=row["transaction_id"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )
    event._state.adding = False
    event._state.db = connection.alias
    event.created = True
    event.wallet_coins = row["wallet_coins"]
    return event


def gift_send_answer(
    *,
    sender: User,
    creator_handle: str,
    gift_slug: str,
    quantity: int = 1,
    live_id: str | None = None,
    video_id: str | None = None,
    message: str = "",
    client_key: str,
    request_hash: str,
    path: str,
    goal: int | None = None,
) -> GiftAnswer:
    """``POST gifts/send/`` on PostgreSQL: the gift and its Idempotency-Key record in one call.

    Returns the answer to send: 201 with the gift, or the stored answer of an earlier request
    with this key (``replayed``). Raises the refusal's DomainError (nothing was written: the
    caller stores the refusal as the key's answer) or IdempotencyConflict (another body).
    """
    from accounts.models import IdempotencyRecord

    http = HttpIdempotency(key=client_key, request_hash=request_hash, path=path)
    try:
        answer = _gift_send_sql(
            sender=sender,
            creator_handle=creator_handle,
            gift_slug=gift_slug,
            quantity=quantity,
            live_id=live_id,
            video_id=video_id,
            message=message,
            client_key=client_key,
            country=None,
            http=http,
            goal=goal,
        )
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != ANSWERED_MEANWHILE:
            raise
        record = IdempotencyRecord.objects.get(user=sender, key=client_key)
        if record.request_hash != request_hash:
            raise IdempotencyConflict() from None
        return GiftAnswer(record.response_status, record.response_body, True)
    return GiftAnswer(answer["status"], answer["body"], answer["result"] == "replay")
