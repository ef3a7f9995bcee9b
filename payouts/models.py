"""Payout methods, batches, payouts and their transition log (see docs/payouts.md).

The diamonds themselves live in the ledger (``wallets``): a payout's diamonds sit in the
creator's ``diamonds_in_payout`` account from the moment the payout row exists until it is
paid (→ platform ``diamonds_paid_out``) or failed / cancelled (→ back to available).
"""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from djmoney.models.fields import MoneyField
from djmoney.money import Money

from creators.models import Creator

if TYPE_CHECKING:
    from payouts.selectors import StatusWords


class Rail(models.TextChoices):
    MANUAL = "manual", "Bank transfer (manual)"
    STRIPE = "stripe", "Stripe Connect"


class TaxFormStatus(models.TextChoices):
    MISSING = "missing", "Not received"
    W9 = "w9", "W-9 received"
    W8BEN = "w8ben", "W-8BEN received"


class PayoutMethod(models.Model):
    """Where a creator's money goes. Any change of destination clears ``verified``."""

    creator = models.OneToOneField(Creator, on_delete=models.PROTECT, related_name="payout_method")
    rail = models.CharField(max_length=16, choices=Rail.choices)
    account_holder = models.CharField(max_length=140, blank=True)
    # Stored normalised (no spaces, upper case); only the last four characters leave the server.
    iban = models.CharField(max_length=34, blank=True)
    stripe_account_id = models.CharField(max_length=255, blank=True)
    is_verified = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Four-eyes on bank details: one finance member proposes the verification, a different one
    # approves it. A change of destination clears the proposal.
    verification_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verification_requested_at = models.DateTimeField(null=True, blank=True)
    tax_form_status = models.CharField(
        max_length=16, choices=TaxFormStatus.choices, default=TaxFormStatus.MISSING
    )
    tax_form_received_at = models.DateTimeField(null=True, blank=True)
    # When the destination (rail, account holder, IBAN or Stripe account) was last set: payouts
    # to it wait ``PAYOUT_DESTINATION_HOLD_HOURS`` from then. Null: set before holds existed.
    destination_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_account_id"],
                condition=~Q(stripe_account_id=""),
                name="payoutmethod_unique_stripe_account",
            ),
            # The approver is never the proposer, whatever the code above does.
            models.CheckConstraint(
                condition=Q(verified_by__isnull=True)
                | Q(verification_requested_by__isnull=True)
                | ~Q(verified_by=models.F("verification_requested_by")),
                name="payoutmethod_verification_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.creator} via {self.rail}"

    @property
    def iban_last4(self) -> str:
        return self.iban[-4:] if self.iban else ""

    @property
    def destination(self) -> str:
        """Where a payout made now would go (what ``Payout.destination`` records)."""
        return self.stripe_account_id if self.rail == Rail.STRIPE else self.iban

    @property
    def destination_held_until(self) -> datetime | None:
        """Until when payouts to this destination wait (None: no hold)."""
        if self.destination_changed_at is None:
            return None
        hours = settings.PAYOUT_DESTINATION_HOLD_HOURS
        until = self.destination_changed_at + timedelta(hours=hours)
        return until if hours > 0 and until > timezone.now() else None


class PayoutBatch(models.Model):
    """One run of the payout selection (weekly by beat, or ``run_payouts``)."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payouts_created = models.PositiveIntegerField(default=0)
    diamonds = models.BigIntegerField(default=0)
    payouts_resent = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "payout batches"

    def __str__(self) -> str:
        return f"Batch #{self.pk} ({self.started_at:%Y-%m-%d %H:%M})"


class PayoutStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    PROCESSING = "processing", "Processing"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# A payout is open while its diamonds sit in the creator's in-payout account.
OPEN_STATUSES = [
    PayoutStatus.REQUESTED,
    PayoutStatus.AWAITING_APPROVAL,
    PayoutStatus.PROCESSING,
]


class Payout(models.Model):
    # Set by ``payouts.selectors.payout_panel`` on the payouts it shows (not columns).
    failure_words: str
    words: "StatusWords"
    is_held: bool

    creator = models.ForeignKey(Creator, on_delete=models.PROTECT, related_name="payouts")
    batch = models.ForeignKey(
        PayoutBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="payouts"
    )
    diamonds = models.BigIntegerField()
    # djmoney ships MoneyField untyped, as a DecimalField: it reads as Money.
    amount: Money = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")  # type: ignore[assignment,no-untyped-call]  # as above
    status = models.CharField(
        max_length=20, choices=PayoutStatus.choices, default=PayoutStatus.REQUESTED
    )
    rail = models.CharField(max_length=16, choices=Rail.choices)
    # The destination as it was when the payout was created (a later method change must not
    # redirect money already on its way).
    destination = models.CharField(max_length=255, blank=True)
    hold_reason = models.CharField(max_length=200, blank=True)
    # Set when the sender found the destination changed less than
    # ``PAYOUT_DESTINATION_HOLD_HOURS`` ago: the payout stays requested until then.
    held_until = models.DateTimeField(null=True, blank=True)
    rail_reference = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # The USD value of one diamond when the payout was made (its statement shows this rate
    # even if DIAMOND_VALUE changes later). Null for payouts made before statements existed.
    diamond_value = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    # "Cash out now" (payouts.instant): asked for by the creator, outside the weekly batch, for
    # a fee kept from the amount (``amount`` is what is sent: the diamonds' value minus ``fee``).
    is_instant = models.BooleanField(default=False)
    fee: Money = MoneyField(max_digits=14, decimal_places=2, default=0, default_currency="USD")  # type: ignore[assignment,no-untyped-call]  # as amount

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(diamonds__gt=0), name="payout_diamonds_positive"),
            # Never two payouts on their way for one creator: a second batch run (or a
            # concurrent one) cannot move the same diamonds twice.
            models.UniqueConstraint(
                fields=["creator"],
                condition=Q(status__in=OPEN_STATUSES),
                name="payout_one_open_per_creator",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="payout_status_created"),
            models.Index(fields=["creator", "-created_at"], name="payout_creator_newest"),
        ]

    def __str__(self) -> str:
        return f"Payout #{self.pk} {self.creator} {self.diamonds} diamonds ({self.status})"

    @property
    def idempotency_key(self) -> str:
        """Sent to the rail: the same payout is the same transfer, however often we retry."""
        return f"payout-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class PayoutEvent(models.Model):
    """Every transition of a payout, with who did it (null: the system) and why."""

    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, choices=PayoutStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


class StatementLineKind(models.TextChoices):
    GIFT = "gift", "Gift"
    MEMBERSHIP = "membership", "Membership"
    CHARGEBACK = "chargeback", "Chargeback clawback"
    CHARGEBACK_REVERSAL = "chargeback_reversal", "Chargeback reversed"
    ADJUSTMENT = "adjustment", "Adjustment"


class PayoutStatementLine(models.Model):
    """What a payout pays, diamond by diamond: a FIFO share of one ledger entry that brought
    diamonds to the creator (a gift's credit to pending, a clawback's debit from pending, a
    staff adjustment of available). Written with the payout, in the same transaction, by
    ``payouts.statements.statement_allocate``; never changed afterwards. The lines of a failed
    or cancelled payout stay as its statement but no longer count as allocated: the next payout
    takes those diamonds again. ``verify_ledger`` checks each payout's lines sum to its
    diamonds.
    """

    # A payout writes ~20 lines; the weekly batch writes millions (issue #16). Each foreign-key
    # check is a query per line (and locks the row it points at), so no reference of a line
    # carries a database constraint: ledger entries and journal rows can never be deleted (a
    # trigger refuses it), payouts are never deleted either (``PROTECT`` refuses it while they
    # have lines), the lines are only ever written from a join with their payout and entries,
    # and ``verify_ledger`` checks that every line names an existing payout and an existing
    # entry of that payout's creator with its true amount and transaction. Three indexes per
    # line, no redundant one: (payout, position) serves the payout's lookups, the unique
    # (entry, payout) the entry's.
    payout = models.ForeignKey(
        Payout,
        on_delete=models.PROTECT,
        related_name="statement_lines",
        db_index=False,
        db_constraint=False,
    )
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=24, choices=StatementLineKind.choices)
    entry = models.ForeignKey(
        "wallets.Entry",
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    transaction = models.ForeignKey(
        "wallets.LedgerTransaction",
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    # This payout's share of the entry (signed like the entry); the entry's whole amount is
    # ``entry_diamonds``, so a gift split across two payouts shows as two partial lines.
    diamonds = models.BigIntegerField()
    entry_diamonds = models.BigIntegerField()
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["payout", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["payout", "position"], name="statementline_unique_position"
            ),
            # Entry first: it is also the index of an entry's lines (a gift's trace).
            models.UniqueConstraint(
                fields=["entry", "payout"], name="statementline_entry_once_per_payout"
            ),
            models.CheckConstraint(
                condition=~Q(diamonds=0), name="statementline_diamonds_non_zero"
            ),
        ]

    def __str__(self) -> str:
        return f"payout {self.payout_id} line {self.position}: {self.diamonds:+d}"


class PayoutMethodChange(models.Model):
    """A change of payout destination and what it replaced, so the owner can undo it from
    the security email within the destination hold (``payouts.destination``)."""

    # Set by ``payouts.destination`` on the change it shows (not a column).
    old_words: str

    method = models.ForeignKey(PayoutMethod, on_delete=models.CASCADE, related_name="changes")
    # The method's fields before the change (the whole IBAN: it is ours to restore).
    previous = models.JSONField(default=dict)
    changed_at = models.DateTimeField(default=timezone.now)
    undone_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"change of {self.method} at {self.changed_at:%Y-%m-%d %H:%M}"
