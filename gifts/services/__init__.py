"""Sending gifts: one transaction that debits the sender, credits the creator and records it.

On PostgreSQL (``GIFT_SEND_SQL``, default on) the whole gift is ONE database call: the
PL/pgSQL function ``gift_send_v3`` (gifts/migrations/0005_gift_send_v3.py; v1 and v2 are
kept) does the reads, checks every rule below in the same order and writes the same rows (the
``gift.received`` webhook event included). The Python below is the
readable reference and the SQLite path (``make run``); the gift tests run against both.

In the Python reference, per gift this runs three reads (creator with its pending account, gift, the sender's wallet
plus the two platform accounts) and six writes (ledger_post: journal insert in a savepoint,
the wallet's conditional debit, the entries; the daily spend upsert; the gift event; the
leaderboard tally upsert). The creator's row and its pending account row are never written
or locked: the credit is an appended entry.

By concern: ``send`` (``gift_send``, the entry point), ``rules`` (what a gift must pass),
``reference`` (the Python path), ``one_statement`` (the PostgreSQL path), ``errors``.
"""

from gifts.services.errors import (
    CreatorCannotReceive,
    CreatorNotFound,
    DailyLimitExceeded,
    GiftNotFound,
    GiftUnavailable,
    MessageBlocked,
    SelfGift,
)
from gifts.services.one_statement import (
    GiftAnswer,
    HttpIdempotency,
    gift_send_answer,
    gift_send_uses_sql,
)
from gifts.services.reference import gift_send_python
from gifts.services.rules import (
    CONTEXT_ID_RE,
    MESSAGE_MAX,
    QUANTITY_MAX,
    diamonds_for,
    message_clean,
)
from gifts.services.send import gift_send

__all__ = [
    "CONTEXT_ID_RE",
    "MESSAGE_MAX",
    "QUANTITY_MAX",
    "CreatorCannotReceive",
    "CreatorNotFound",
    "DailyLimitExceeded",
    "GiftAnswer",
    "GiftNotFound",
    "GiftUnavailable",
    "HttpIdempotency",
    "MessageBlocked",
    "SelfGift",
    "diamonds_for",
    "gift_send",
    "gift_send_answer",
    "gift_send_python",
    "gift_send_uses_sql",
    "message_clean",
]
