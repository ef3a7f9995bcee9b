"""Reading a statement: a payout's lines grouped by day and live / video, with their gifts,
and following one gift to the payout that pays it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from django.conf import settings
from djmoney.money import Money

from config.errors import NotFound
from payouts.models import Payout, PayoutStatementLine, StatementLineKind
from payouts.statements.allocation import VOID_STATUSES
from wallets.models import AccountKind, Entry, LedgerTransaction, TransactionKind

if TYPE_CHECKING:
    from accounts.models import User
    from gifts.models import GiftEvent


@dataclass
class StatementRow:
    position: int
    kind: str
    kind_label: str
    occurred_at: datetime
    transaction_id: int
    gift_event_id: int | None
    sender: str
    gift: str
    quantity: int | None
    coins: int | None
    diamonds_per_coin: str
    entry_diamonds: int
    diamonds: int
    value: Decimal
    memo: str

    @property
    def is_partial(self) -> bool:
        return self.diamonds != self.entry_diamonds


@dataclass
class StatementGroup:
    day: date
    context: str  # live / video / none / chargebacks / adjustments
    context_id: str
    label: str
    rows: list[StatementRow] = field(default_factory=list)

    @property
    def diamonds(self) -> int:
        return sum(r.diamonds for r in self.rows)

    @property
    def gifts(self) -> int:
        return sum(1 for r in self.rows if r.kind == StatementLineKind.GIFT)


@dataclass
class Statement:
    payout: Payout
    groups: list[StatementGroup]
    diamonds: int
    diamond_value: Decimal
    diamonds_per_coin: str
    gross_value: Decimal
    fees: Money
    rounding: Money
    amount: Money
    currency: str
    conversion_note: str
    chargeback_diamonds: int
    gift_diamonds: int
    adjustment_diamonds: int
    membership_diamonds: int
    is_void: bool
    paid_again_by: list[int]

    @property
    def lines(self) -> list[StatementRow]:
        return [row for group in self.groups for row in group.rows]

    @property
    def balances(self) -> bool:
        return self.diamonds == self.payout.diamonds

    @property
    def gross_value_money(self) -> Money:
        return Money(self.gross_value, self.currency)

    @property
    def diamond_value_money(self) -> Money:
        return Money(self.diamond_value, self.currency)


def _ratio(num: int, den: int) -> str:
    value = Fraction(num, den)
    return str(value.numerator) if value.denominator == 1 else f"{num}/{den}"


CONTEXT_ORDER = ["live", "video", "none", "memberships", "chargebacks", "adjustments"]


def _context_of(row_kind: str, event: GiftEvent | None) -> tuple[str, str, str]:
    if row_kind == StatementLineKind.CHARGEBACK:
        return "chargebacks", "", "Chargebacks"
    if row_kind == StatementLineKind.MEMBERSHIP:
        return "memberships", "", "Memberships"
    if row_kind != StatementLineKind.GIFT or event is None:
        return "adjustments", "", "Adjustments"
    if event.live_id:
        return "live", event.live_id, f"Live {event.live_id}"
    if event.video_id:
        return "video", event.video_id, f"Video {event.video_id}"
    return "none", "", "Gifts on your profile"


def payout_statement(*, payout: Payout) -> Statement:
    from gifts.models import GiftEvent  # payouts sits above gifts (imports flow one way)

    value_per_diamond = payout.diamond_value or settings.DIAMOND_VALUE
    lines = list(PayoutStatementLine.objects.filter(payout=payout).order_by("position"))
    tx_ids = [line.transaction_id for line in lines]
    events = {
        e.transaction_id: e
        for e in GiftEvent.objects.filter(transaction_id__in=tx_ids).select_related(
            "sender", "gift"
        )
    }
    others = {
        pk: (memo, actor)
        for pk, memo, actor in LedgerTransaction.objects.filter(
            pk__in=[line.transaction_id for line in lines if line.transaction_id not in events]
        ).values_list("pk", "memo", "actor__username")
    }
    memos = {pk: memo for pk, (memo, _actor) in others.items()}
    # A membership month's line names the viewer who paid it (the transaction's actor).
    payers = {
        line.transaction_id: others.get(line.transaction_id, ("", None))[1] or ""
        for line in lines
        if line.kind == StatementLineKind.MEMBERSHIP
    }
    groups: dict[tuple[object, ...], StatementGroup] = {}
    for line in lines:
        event = events.get(line.transaction_id)
        context, context_id, label = _context_of(line.kind, event)
        day = line.occurred_at.date()
        key = (day, context, context_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = StatementGroup(
                day=day, context=context, context_id=context_id, label=label
            )
        group.rows.append(
            StatementRow(
                position=line.position,
                kind=line.kind,
                kind_label=StatementLineKind(line.kind).label,
                occurred_at=line.occurred_at,
                transaction_id=line.transaction_id,
                gift_event_id=event.pk if event else None,
                sender=event.sender.username if event else payers.get(line.transaction_id, ""),
                gift=event.gift.name if event else "",
                quantity=event.quantity if event else None,
                coins=event.coins if event else None,
                diamonds_per_coin=_ratio(event.diamonds, event.coins) if event else "",
                entry_diamonds=line.entry_diamonds,
                diamonds=line.diamonds,
                value=Decimal(line.diamonds) * value_per_diamond,
                memo=event.message if event else memos.get(line.transaction_id, ""),
            )
        )
    ordered = sorted(
        groups.values(), key=lambda g: (g.day, CONTEXT_ORDER.index(g.context), g.context_id)
    )
    total = sum(line.diamonds for line in lines)
    currency = str(payout.amount.currency)
    gross = Decimal(total) * value_per_diamond
    paid = payout.amount
    by_kind: dict[str, int] = defaultdict(int)
    for line in lines:
        by_kind[line.kind] += line.diamonds
    paid_again_by: list[int] = []
    if payout.status in VOID_STATUSES:
        paid_again_by = sorted(
            set(
                PayoutStatementLine.objects.filter(entry_id__in=[line.entry_id for line in lines])
                .exclude(payout=payout)
                .exclude(payout__status__in=VOID_STATUSES)
                .filter(payout__id__gt=payout.pk)
                .values_list("payout_id", flat=True)
            )
        )
    return Statement(
        payout=payout,
        groups=ordered,
        diamonds=total,
        diamond_value=value_per_diamond,
        diamonds_per_coin=_ratio(settings.DIAMONDS_PER_COIN_NUM, settings.DIAMONDS_PER_COIN_DEN),
        gross_value=gross,
        fees=Money(payout.fee.amount, currency),
        # Amounts are rounded down to the cent (payouts.services.diamonds_value); an instant
        # payout's fee is kept from the amount sent.
        rounding=Money(
            paid.amount + payout.fee.amount - gross.quantize(Decimal("0.0001")), currency
        )
        if total
        else Money(Decimal("0.00"), currency),
        amount=paid,
        currency=currency,
        conversion_note=(
            f"Diamonds are valued in {settings.PAYOUT_CURRENCY} and paid in {currency}: "
            "no currency conversion by Applause (rate 1.0000). Viewers' coin purchases in other "
            "currencies do not change what a diamond is worth. If your bank account is in "
            "another currency, your bank converts at its own rate."
        ),
        chargeback_diamonds=by_kind[StatementLineKind.CHARGEBACK]
        + by_kind[StatementLineKind.CHARGEBACK_REVERSAL],
        gift_diamonds=by_kind[StatementLineKind.GIFT],
        membership_diamonds=by_kind[StatementLineKind.MEMBERSHIP],
        adjustment_diamonds=by_kind[StatementLineKind.ADJUSTMENT],
        is_void=payout.status in VOID_STATUSES,
        paid_again_by=paid_again_by,
    )


def payout_for_creator(*, user: User, payout_id: int) -> Payout:
    """The caller's own payout, or 404 (another creator's payout does not exist for them)."""
    payout = (
        Payout.objects.select_related("creator").filter(pk=payout_id, creator__user=user).first()
    )
    if payout is None:
        raise NotFound("There is no such payout.")
    return payout


# --- Following one gift --------------------------------------------------------------------


@dataclass
class GiftTrace:
    gift_event: GiftEvent
    sender_debit: Entry | None
    pending_credit: Entry | None
    release: LedgerTransaction | None
    lines: list[PayoutStatementLine]
    paid_by: Payout | None

    @property
    def status(self) -> str:
        if self.paid_by is not None:
            return self.paid_by.status
        return "released" if self.release is not None else "pending"


def gift_trace(*, user: User, transaction_id: int) -> GiftTrace:
    """Follow one gift (by its ledger transaction: the sender's debit) to its payout(s).

    Only the creator who received the gift can trace it; anything else is 404.
    """
    from gifts.models import GiftEvent

    event = (
        GiftEvent.objects.select_related("sender", "gift", "creator")
        .filter(transaction_id=transaction_id, creator__user=user)
        .first()
    )
    if event is None:
        raise NotFound("No gift to you has that ledger transaction id.")
    entries = list(Entry.objects.filter(transaction_id=transaction_id).select_related("account"))
    debit = next((e for e in entries if e.account.kind == AccountKind.WALLET), None)
    credit = next((e for e in entries if e.account.kind == AccountKind.DIAMONDS_PENDING), None)
    release = None
    if credit is not None:
        # The first release whose cutoff (in its key) is after the credit matured it.
        for tx in LedgerTransaction.objects.filter(
            kind=TransactionKind.RELEASE,
            reference=f"creator:{event.creator_id}",
            created_at__gte=credit.created_at,
        ).order_by("created_at", "id")[:50]:
            cutoff = datetime.fromisoformat(tx.idempotency_key.split(":", 2)[2])
            if cutoff > credit.created_at:
                release = tx
                break
    lines = list(
        PayoutStatementLine.objects.filter(entry=credit)
        .select_related("payout")
        .order_by("payout_id")
        if credit is not None
        else []
    )
    paying = [line.payout for line in lines if line.payout.status not in VOID_STATUSES]
    return GiftTrace(
        gift_event=event,
        sender_debit=debit,
        pending_credit=credit,
        release=release,
        lines=lines,
        paid_by=paying[-1] if paying else None,
    )
