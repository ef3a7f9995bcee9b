"""Payout statements: which gifts (and clawbacks, adjustments) each payout pays.

How a payout maps to gifts (docs/statements-and-live.md). A payout pays "all available
diamonds", and available diamonds come from releases of matured pending credits, oldest
first (the creator's release watermark). So the statement is a **FIFO allocation**: the
creator's *source entries*, in ledger order (``created_at``, id), are

- credits to ``diamonds_pending`` by gifts (and by a won dispute's reversal),
- debits from ``diamonds_pending`` by chargeback clawbacks (negative lines),
- staff adjustments of ``diamonds_available``;

internal moves (release, payout created / paid / failed) are not sources. Each payout takes
every unallocated negative entry made before it (whole: a clawback shows on the statement of
the period it happened in), then the oldest unallocated positive entries until the lines sum
to its diamonds; the last one may be split between two payouts (two partial lines).
Lines are written with the payout in the same transaction and never change. A failed or
cancelled payout keeps its lines as its statement, but they stop counting as allocated, so
the next payout takes the same diamonds again (its diamonds went back to available).

The unallocated source entries net to the creator's pending + available balance when the payout
is made (never negative), and the payout takes all of available, so there are always enough
positive entries; ``verify_ledger`` checks every payout's lines sum to its diamonds and
that no entry is allocated beyond its amount.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

from django.conf import settings
from django.db.models import Max, Sum
from djmoney.money import Money

from config.errors import NotFound
from payouts.models import Payout, PayoutStatementLine, PayoutStatus, StatementLineKind
from wallets.models import Account, AccountKind, Entry, LedgerTransaction, TransactionKind

# Internal moves between a creator's own accounts: not where diamonds come from.
NOT_SOURCES = [
    TransactionKind.RELEASE,
    TransactionKind.PAYOUT_CREATED,
    TransactionKind.PAYOUT_PAID,
    TransactionKind.PAYOUT_FAILED,
]
VOID_STATUSES = [PayoutStatus.FAILED, PayoutStatus.CANCELLED]
# Entries are stamped when their transaction starts and become visible when it commits; a
# source entry stamped shortly before the last allocated one may have committed after that
# allocation. Rescanning this far back picks such stragglers up (each is still taken once).
LATE_COMMIT_MARGIN = timedelta(hours=1)

LINE_KIND = {
    TransactionKind.GIFT: StatementLineKind.GIFT,
    TransactionKind.MEMBERSHIP: StatementLineKind.MEMBERSHIP,
    TransactionKind.CLAWBACK: StatementLineKind.CHARGEBACK,
    TransactionKind.REVERSAL: StatementLineKind.CHARGEBACK_REVERSAL,
}


# --- Allocation (writes: runs inside the payout-creating transaction) ------------------------


def _source_accounts(user_id: int) -> list[int]:
    return list(
        Account.objects.filter(
            user_id=user_id,
            kind__in=[AccountKind.DIAMONDS_PENDING, AccountKind.DIAMONDS_AVAILABLE],
        ).values_list("pk", flat=True)
    )


def statement_allocate(*, payout: Payout) -> list[PayoutStatementLine]:
    """Write ``payout``'s statement lines: the next unallocated source entries, FIFO.

    Called once, in the transaction that creates the payout (one open payout per creator and
    the batch's advisory lock mean no other allocation for this creator runs beside it).
    """
    creator_id = payout.creator_id
    allocated_lines = PayoutStatementLine.objects.filter(payout__creator_id=creator_id).exclude(
        payout__status__in=VOID_STATUSES
    )
    # The cursor is the newest *positive* line: positives are taken oldest first, so every
    # positive entry before it is allocated. (A clawback line can be newer than positives still
    # unallocated: counting it would skip them for good.)
    cursor = allocated_lines.filter(diamonds__gt=0).aggregate(last=Max("occurred_at"))["last"]
    since = cursor - LATE_COMMIT_MARGIN if cursor else None

    entries = Entry.objects.filter(account_id__in=_source_accounts(payout.creator.user_id)).exclude(
        transaction__kind__in=NOT_SOURCES
    )
    taken = allocated_lines
    if since is not None:
        entries = entries.filter(created_at__gte=since)
        taken = taken.filter(occurred_at__gte=since)
    already = dict(
        taken.values("entry_id").annotate(total=Sum("diamonds")).values_list("entry_id", "total")
    )

    rows = entries.order_by("created_at", "id").values_list(
        "id", "transaction_id", "transaction__kind", "amount", "created_at"
    )
    # Every clawback (or negative adjustment) made before this payout is on it, whole; the
    # positive entries then fill it oldest first, the last one possibly in part.
    unallocated = []
    for entry_id, transaction_id, tx_kind, amount, created_at in rows.iterator(chunk_size=5000):
        left = amount - already.get(entry_id, 0)
        if left != 0 and (left > 0 or created_at <= payout.created_at):
            unallocated.append((entry_id, transaction_id, tx_kind, amount, created_at, left))
    need = payout.diamonds - sum(row[5] for row in unallocated if row[5] < 0)
    lines: list[PayoutStatementLine] = []
    for entry_id, transaction_id, tx_kind, amount, created_at, left in unallocated:
        if left > 0:
            if need <= 0:
                continue
            take = min(left, need)
            need -= take
        else:
            take = left
        lines.append(
            PayoutStatementLine(
                payout=payout,
                position=len(lines) + 1,
                kind=LINE_KIND.get(tx_kind, StatementLineKind.ADJUSTMENT),
                entry_id=entry_id,
                transaction_id=transaction_id,
                diamonds=take,
                entry_diamonds=amount,
                occurred_at=created_at,
            )
        )
    # A shortfall would mean diamonds with no source in the ledger: leave the lines short so
    # verify_ledger reports the payout rather than inventing a source.
    PayoutStatementLine.objects.bulk_create(lines, batch_size=5000)
    return lines


# --- Reading a statement ---------------------------------------------------------------------


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


def _context_of(row_kind: str, event) -> tuple[str, str, str]:
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
    groups: dict[tuple, StatementGroup] = {}
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


def payout_for_creator(*, user, payout_id: int) -> Payout:
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
    gift_event: object
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


def gift_trace(*, user, transaction_id: int) -> GiftTrace:
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


# --- Downloads -------------------------------------------------------------------------------

CSV_COLUMNS = [
    "payout_id",
    "line",
    "day",
    "context",
    "context_id",
    "kind",
    "occurred_at",
    "ledger_transaction_id",
    "gift_event_id",
    "sender",
    "gift",
    "quantity",
    "coins",
    "diamonds_per_coin",
    "entry_diamonds",
    "diamonds",
    "value",
    "currency",
    "memo",
]


def _money_str(value: Decimal, places: str = "0.0001") -> str:
    return str(value.quantize(Decimal(places), rounding=ROUND_DOWN))


def statement_csv(statement: Statement) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    pid = statement.payout.pk
    for group in statement.groups:
        for row in group.rows:
            writer.writerow(
                [
                    pid,
                    row.position,
                    group.day.isoformat(),
                    group.context,
                    group.context_id,
                    row.kind,
                    row.occurred_at.isoformat(),
                    row.transaction_id,
                    row.gift_event_id or "",
                    row.sender,
                    row.gift,
                    row.quantity if row.quantity is not None else "",
                    row.coins if row.coins is not None else "",
                    row.diamonds_per_coin,
                    row.entry_diamonds,
                    row.diamonds,
                    _money_str(row.value),
                    statement.currency,
                    _csv_safe(row.memo),
                ]
            )
    # Summary rows: same columns, ``kind`` says what they are.
    empty = [""] * 5
    for kind, diamonds, value in (
        ("total", statement.diamonds, _money_str(statement.gross_value)),
        ("fees", "", str(statement.fees.amount)),
        ("rounding", "", str(statement.rounding.amount)),
        ("amount_paid", statement.payout.diamonds, str(statement.amount.amount)),
    ):
        writer.writerow(
            [pid, "", "", "", "", kind, *empty, "", "", "", "", diamonds, value, statement.currency]
            + [""]
        )
    return out.getvalue()


def _csv_safe(text: str) -> str:
    # Gift messages are viewers' text: keep a spreadsheet from reading them as formulas.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def statement_pdf(statement: Statement) -> bytes:
    from payouts.pdf import text_pdf

    payout = statement.payout
    lines = [
        f"Applause payout statement - payout #{payout.pk}",
        f"Creator @{payout.creator.handle}   status: {payout.get_status_display()}",
        f"Requested {payout.created_at:%Y-%m-%d %H:%M} UTC"
        + (f"   paid {payout.paid_at:%Y-%m-%d %H:%M} UTC" if payout.paid_at else ""),
        "",
        f"Rate: {statement.diamonds_per_coin} diamond(s) per coin gifted",
        f"Diamond value: {statement.diamond_value.normalize()} {statement.currency}",
        "",
    ]
    header = f"{'Time':<6}{'Tx':>9}  {'Sender':<16}{'Gift':<16}{'Qty':>5}{'Coins':>8}{'Dia/coin':>9}{'Diamonds':>11}{'Value':>12}"
    for group in statement.groups:
        lines.append(
            f"{group.day:%a %d %b %Y} - {group.label}: {group.diamonds:,} diamonds".replace(
                ",", " "
            )
        )
        lines.append(header)
        for row in group.rows:
            who = row.sender or row.kind_label
            what = row.gift or (row.memo[:30] if row.memo else "")
            partial = "*" if row.is_partial else " "
            lines.append(
                f"{row.occurred_at:%H:%M} {row.transaction_id:>9}  {who[:15]:<16}{what[:15]:<16}"
                f"{row.quantity if row.quantity is not None else '':>5}"
                f"{row.coins if row.coins is not None else '':>8}"
                f"{row.diamonds_per_coin:>9}{row.diamonds:>10}{partial}"
                f"{_money_str(row.value):>12}"
            )
        lines.append("")
    lines += [
        "* part of this gift's diamonds is paid by another payout",
        "",
        f"Gifts:                {statement.gift_diamonds:>12} diamonds",
        f"Memberships:          {statement.membership_diamonds:>12} diamonds",
        f"Chargebacks:          {statement.chargeback_diamonds:>12} diamonds",
        f"Adjustments:          {statement.adjustment_diamonds:>12} diamonds",
        f"Total:                {statement.diamonds:>12} diamonds",
        f"Value:                {_money_str(statement.gross_value):>12} {statement.currency}",
        f"Fees:                 {statement.fees.amount:>12} {statement.currency}",
        f"Rounding (to cent):   {statement.rounding.amount:>12} {statement.currency}",
        f"Amount paid:          {statement.amount.amount:>12} {statement.currency}",
        "",
        "Currency conversion: " + statement.conversion_note,
    ]
    return text_pdf(lines, title=f"Applause payout #{payout.pk}")
