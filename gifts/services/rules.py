"""What a gift must pass before it is sent (both paths check the same rules in the same
order): the quantity, the context, the message, the creator, the gift, the sender's wallet
and limits."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import TYPE_CHECKING, TypeVar

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, Q, QuerySet
from django.utils.html import strip_tags

from config.errors import AgeRestricted, InsufficientFunds, InvalidInput
from creators.models import Creator
from gifts.models import Gift
from gifts.services.errors import (
    CreatorCannotReceive,
    CreatorNotFound,
    DailyLimitExceeded,
    GiftNotFound,
    GiftUnavailable,
    MessageBlocked,
    SelfGift,
)
from wallets.models import Account, AccountKind
from wallets.services import platform_account, wallet_check_can_spend

_M = TypeVar("_M", bound=Model)

if TYPE_CHECKING:
    from accounts.models import User

QUANTITY_MAX = 9999
MESSAGE_MAX = 150
CONTEXT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def diamonds_for(coins: int) -> int:
    diamonds: int = coins * settings.DIAMONDS_PER_COIN_NUM // settings.DIAMONDS_PER_COIN_DEN
    return diamonds


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


def _clean_context(live_id: str | None, video_id: str | None) -> tuple[str, str]:
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


def _wallet_coins(user_id: int) -> int:
    wallet = Account.objects.filter(kind=AccountKind.WALLET, user_id=user_id).first()
    return wallet.balance if wallet else 0


def _accounts(sender: User) -> tuple[Account | None, Account, Account]:
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


def _get_or_none(queryset: QuerySet[_M]) -> _M | None:
    try:
        return queryset.get()
    except ObjectDoesNotExist:  # the queryset's model's DoesNotExist (its only subclass here)
        return None


def _check_quantity(quantity: object) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidInput("Quantity must be a whole number.", fields={"quantity": ["Invalid."]})
    if not 1 <= quantity <= QUANTITY_MAX:
        raise InvalidInput(
            f"Quantity must be between 1 and {QUANTITY_MAX}.",
            fields={"quantity": [f"Must be between 1 and {QUANTITY_MAX}."]},
        )
    return quantity


def _validate(
    *,
    sender: User,
    creator_handle: str,
    gift_slug: str,
    quantity: object,
    live_id: str | None,
    video_id: str | None,
    message: str,
    country: str | None,
) -> tuple[int, str, str, str, Creator, Gift, Account, Account, Account]:
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
