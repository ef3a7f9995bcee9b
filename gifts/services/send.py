"""``gift_send``: the one entry point; it picks the PostgreSQL statement or the Python
reference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gifts.models import GiftEvent
from gifts.services.one_statement import _event_from_row, _gift_send_sql, gift_send_uses_sql
from gifts.services.reference import gift_send_python

if TYPE_CHECKING:
    from accounts.models import User


def gift_send(
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
    """Send ``quantity`` of a gift to a creator, exactly once per (sender, ``client_key``).

    Returns the GiftEvent with two extra attributes: ``created`` (False for a repeated key,
    which returns the original gift and writes nothing) and ``wallet_coins`` (the sender's
    balance after it). On PostgreSQL one call of ``gift_send_v4``; elsewhere the Python
    reference ``gift_send_python``. ``goal``: the id of one of the creator's open goals the
    gift counts toward (gifts/goals.py); for an all-or-nothing goal the coins are held.
    """
    args: dict[str, Any] = dict(
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
