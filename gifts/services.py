"""Sending gifts: one transaction that debits the sender, credits the creator and records it.

On PostgreSQL (``GIFT_SEND_SQL``, default on) the whole gift is ONE database call: the
PL/pgSQL function ``gift_send_v2`` (gifts/migrations/0004_gift_send_v2.py; v1 is kept) does the reads,
checks every rule below in the same order and writes the same rows. The Python below is the
readable reference and the SQLite path (``make run``); the gift tests run against both.

In the Python reference, per gift this runs three reads (creator with its pending account, gift, the sender's wallet
plus the two platform accounts) and six writes (ledger_post: journal insert in a savepoint,
the wallet's conditional debit, the entries; the daily spend upsert; the gift event; the
leaderboard tally upsert). The creator's row and its pending account row are never written
or locked: the credit is an appended entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.html import strip_tags

from config.errors import (
    AgeRestricted,
    DomainError,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
)
from creators.models import Creator
from gifts.goals import GoalClosed, GoalNotFound, goal_id_clean, goal_lock_for_gift
from gifts.models import Gift, GiftEvent
from notifications.webhooks import webhook_event_emit
from wallets.models import Account, AccountKind, TransactionKind
from wallets.services import (
    Posting,
    SpendingLimitExceeded,
    ledger_post,
    platform_account,
    spending_limits_effective,
    wallet_check_can_spend,
    wallet_frozen_error,
)

QUANTITY_MAX = 9999
MESSAGE_MAX = 150
CONTEXT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class CreatorNotFound(NotFound):
    code = "creator_not_found"
    default_message = "There is no creator with that handle."


class CreatorCannotReceive(DomainError):
    code = "creator_cannot_receive"
    status = 403
    default_message = "This creator cannot receive gifts right now."


class SelfGift(DomainError):
    code = "self_gift"
    status = 400
    default_message = "You cannot send a gift to yourself."


class GiftNotFound(NotFound):
    code = "gift_not_found"
    default_message = "There is no gift with that name."


class GiftUnavailable(DomainError):
    code = "gift_unavailable"
    status = 400
    default_message = "This gift is not available right now."


class DailyLimitExceeded(DomainError):
    code = "daily_limit_exceeded"
    status = 403
    default_message = "This gift would exceed your daily gifting limit."


class MessageBlocked(DomainError):
    code = "message_blocked"
    status = 400
    default_message = "The message contains words that are not allowed."


def diamonds_for(coins: int) -> int:
    return coins * settings.DIAMONDS_PER_COIN_NUM // settings.DIAMONDS_PER_COIN_DEN


def message_clean(message: str) -> str:
    """Plain text only: markup stripped, control characters dropped, whitespace collapsed."""
    if not isinstance(message, str):
        raise InvalidInput("The message must be text.", fields={"message": ["Must be text."]})
    if len(message) > MESSAGE_MAX:
        raise InvalidInput(
            f"The message is {MESSAGE_MAX} characters at most.",
            fields={"message": [f"Ensure this field has no more than {MESSAGE_MAX} characters."]},
        )
    text = strip_tags(message)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in " \t\n")
    text = " ".join(text.split())
    lowered = text.casefold()
    for word in settings.GIFT_MESSAGE_BLOCKLIST:
        if re.search(rf"(?<!\w){re.escape(word.casefold())}(?!\w)", lowered):
            raise MessageBlocked(fields={"message": ["This message is not allowed."]})
    return text


def _clean_context(live_id, video_id) -> tuple[str, str]:
    live_id, video_id = (live_id or "").strip(), (video_id or "").strip()
    if live_id and video_id:
        raise InvalidInput(
            "A gift goes to a live stream or a video, not both.",
            fields={"video_id": ["Give live_id or video_id, not both."]},
        )
    for name, value in (("live_id", live_id), ("video_id", video_id)):
        if value and not CONTEXT_ID_RE.match(value):
            raise InvalidInput(
                f"{name} is 1-64 letters, digits, '_', '.', ':' or '-'.",
                fields={name: ["1-64 letters, digits, '_', '.', ':' or '-'."]},
            )
    return live_id, video_id


def _ledger_key(sender_id: int, client_key: str) -> str:
    client_key = (client_key or "").strip()
    if not client_key:
        raise InvalidInput("A client key is required.", fields={"client_key": ["Required."]})
    if len(client_key) > 200:
        client_key = "sha256-" + hashlib.sha256(client_key.encode()).hexdigest()
    return f"gift:{sender_id}:{client_key}"


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


def _wallet_coins(user_id: int) -> int:
    wallet = Account.objects.filter(kind=AccountKind.WALLET, user_id=user_id).first()
    return wallet.balance if wallet else 0


def _accounts(sender) -> tuple[Account | None, Account, Account]:
    """The sender's wallet and the two platform accounts of a gift, in one query."""
    rows = Account.objects.filter(
        Q(kind=AccountKind.WALLET, user=sender)
        | Q(kind__in=[AccountKind.COINS_SPENT, AccountKind.DIAMOND_ISSUANCE], user__isnull=True)
    )
    by_kind = {row.kind: row for row in rows}
    wallet = by_kind.get(AccountKind.WALLET)
    spent = by_kind.get(AccountKind.COINS_SPENT) or platform_account(AccountKind.COINS_SPENT)
    issuance = by_kind.get(AccountKind.DIAMOND_ISSUANCE) or platform_account(
        AccountKind.DIAMOND_ISSUANCE
    )
    return wallet, spent, issuance


def _daily_spend_add(*, user_id: int, day, coins: int) -> None:
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


def _tally_add(*, creator_id: int, sender_id: int, day, coins: int, diamonds: int) -> None:
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
CREATOR_FIELDS = (
    "id",
    "handle",
    "display_name",
    "is_active",
    "user__id",
    "user__is_active",
    "user__date_of_birth",
    "pending_account__id",
    "pending_account__kind",
    "pending_account__unit",
    "pending_account__user_id",
    "pending_account__is_hot",
)


def _get_or_none(queryset):
    try:
        return queryset.get()
    except queryset.model.DoesNotExist:
        return None


def _check_quantity(quantity) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidInput("Quantity must be a whole number.", fields={"quantity": ["Invalid."]})
    if not 1 <= quantity <= QUANTITY_MAX:
        raise InvalidInput(
            f"Quantity must be between 1 and {QUANTITY_MAX}.",
            fields={"quantity": [f"Must be between 1 and {QUANTITY_MAX}."]},
        )
    return quantity


def _validate(*, sender, creator_handle, gift_slug, quantity, live_id, video_id, message, country):
    quantity = _check_quantity(quantity)
    live_id, video_id = _clean_context(live_id, video_id)
    message = message_clean(message or "")
    if not sender.is_adult:
        raise AgeRestricted("You must be 18 or older to send gifts.")
    handle = (creator_handle or "").strip().lower()
    # .get() on the unique handle: .first() would add an ORDER BY (a sort node per gift).
    creator = (
        _get_or_none(
            Creator.objects.select_related("user", "pending_account")
            .only(*CREATOR_FIELDS)
            .filter(handle=handle)
        )
        if 0 < len(handle) <= 30
        else None
    )
    if creator is None:
        raise CreatorNotFound()
    if creator.user_id == sender.pk:
        raise SelfGift()
    if not creator.can_receive_gifts or creator.pending_account is None:
        raise CreatorCannotReceive()
    slug = (gift_slug or "").strip().lower()
    gift = _get_or_none(Gift.objects.filter(slug=slug)) if 0 < len(slug) <= 40 else None
    if gift is None:
        raise GiftNotFound()
    if not gift.is_available(country=country):
        raise GiftUnavailable()
    if gift.coins * quantity > settings.DAILY_GIFT_LIMIT:
        raise DailyLimitExceeded()
    wallet, spent, issuance = _accounts(sender)
    if wallet is None:
        raise InsufficientFunds()
    wallet_check_can_spend(wallet=wallet)
    return quantity, live_id, video_id, message, creator, gift, wallet, spent, issuance


def gift_send(
    *,
    sender,
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
    """Send ``quantity`` of a gift to a creator, exactly once per (sender, ``client_key``).

    Returns the GiftEvent with two extra attributes: ``created`` (False for a repeated key,
    which returns the original gift and writes nothing) and ``wallet_coins`` (the sender's
    balance after it). On PostgreSQL one call of ``gift_send_v2``; elsewhere the Python
    reference ``gift_send_python``. ``goal``: the id of one of the creator's open goals the
    gift counts toward (gifts/goals.py); for an all-or-nothing goal the coins are held.
    """
    args = dict(
        sender=sender,
        creator_handle=creator_handle,
        gift_slug=gift_slug,
        quantity=quantity,
        live_id=live_id,
        video_id=video_id,
        message=message,
        client_key=client_key,
        country=country,
        goal=goal,
    )
    if not gift_send_uses_sql():
        return gift_send_python(**args)
    answer = _gift_send_sql(**args, http=None)
    event = _event_from_row(answer["event"], sender)
    event.created = answer["result"] == "created"
    return event


@transaction.atomic
def gift_send_python(
    *,
    sender,
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
            Posting(creator.pending_account, diamonds),
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


# --- One round trip (PostgreSQL) --------------------------------------------------------------

# The SQL function this code calls. A new rule or argument means a new function (and a new
# migration), never a changed one: during a rolling deploy old code calls the old version.
GIFT_SEND_FUNCTION = "gift_send_v2"
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
    body: dict
    replayed: bool


def _refusal(answer: dict) -> DomainError:
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
    sender,
    creator_handle,
    gift_slug,
    quantity,
    live_id,
    video_id,
    message,
    client_key,
    country,
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
    with connection.cursor() as cursor:
        cursor.execute(
            GIFT_SEND_SQL,
            [
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
            ],
        )
        answer = cursor.fetchone()[0]
    if isinstance(answer, str):  # a driver without jsonb loading
        answer = json.loads(answer)
    if answer["result"] == "refused":
        raise _refusal(answer)
    if answer["result"] == "conflict":
        raise IdempotencyConflict()
    return answer


def _event_from_row(row: dict, sender) -> GiftEvent:
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
    sender,
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
