"""Memberships: a creator's tiers (up to three), viewers' monthly memberships, the months
they paid (one charge row per month, backed by a unique key) and their history.

Money lives in the ledger: every month paid is a ``membership`` ledger transaction (wallet →
coins spent, diamond issuance → the creator's pending diamonds, like a gift); a
``MembershipCharge`` row says which membership and which period it paid.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

TIERS_MAX = 3


class Tier(models.Model):
    """One of a creator's membership tiers (``position`` 1..3: the database caps the count).

    ``coins_per_month`` is what a new member pays. Existing members keep the price they pay
    until their first renewal on or after ``price_effective_at`` (a change is announced
    ``MEMBERSHIP_PRICE_NOTICE_DAYS`` ahead).
    """

    creator = models.ForeignKey(
        "creators.Creator", on_delete=models.PROTECT, related_name="membership_tiers"
    )
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=60)
    coins_per_month = models.BigIntegerField()
    perks = models.CharField(max_length=500, blank=True)
    price_effective_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["creator", "position"]
        constraints = [
            models.UniqueConstraint(fields=["creator", "position"], name="tier_unique_position"),
            models.CheckConstraint(
                condition=Q(position__gte=1) & Q(position__lte=TIERS_MAX),
                name="tier_at_most_three",
            ),
            models.CheckConstraint(condition=Q(coins_per_month__gt=0), name="tier_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.coins_per_month} coins/month)"


class MembershipStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    GRACE = "grace", "Grace period"
    CANCELLED = "cancelled", "Cancelled"
    LAPSED = "lapsed", "Lapsed"


# A membership whose member has the perks (a cancelled one until its period ends).
LIVE_STATUSES = [MembershipStatus.ACTIVE, MembershipStatus.GRACE, MembershipStatus.CANCELLED]
# Memberships the renewal run looks at (``next_attempt_at`` says when).
RENEWING_STATUSES = [MembershipStatus.ACTIVE, MembershipStatus.GRACE]


class Membership(models.Model):
    """A viewer's membership of one creator (one row per pair, reused when they rejoin).

    Paid periods are whole calendar months from ``anchor``: the current one ends at
    ``anchor + period_count months`` (stored in ``current_period_end``). ``months`` counts
    every month ever paid or gifted (the loyalty badge). ``renews`` is off for a cancelled
    membership and for a gifted one the member never chose to renew.
    """

    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships"
    )
    creator = models.ForeignKey(
        "creators.Creator", on_delete=models.PROTECT, related_name="memberships"
    )
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="memberships")
    # A switch the member asked for: it takes effect at the next renewal.
    next_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=MembershipStatus.choices, default=MembershipStatus.ACTIVE
    )
    renews = models.BooleanField(default=True)
    # The price the member pays now (a tier's price change reaches them at a later renewal).
    coins_per_month = models.BigIntegerField()
    anchor = models.DateTimeField()
    period_count = models.PositiveIntegerField(default=1)
    current_period_end = models.DateTimeField()
    months = models.PositiveIntegerField(default=0)
    grace_until = models.DateTimeField(null=True, blank=True)
    # When the renewal run should next look at it (the period end, or the next retry in grace).
    next_attempt_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["member", "creator"], name="membership_one_per_pair"),
            models.CheckConstraint(
                condition=Q(coins_per_month__gt=0), name="membership_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(current_period_end__gt=F("anchor")), name="membership_period_ordered"
            ),
            models.CheckConstraint(
                condition=~Q(status="grace") | Q(grace_until__isnull=False),
                name="membership_grace_has_end",
            ),
        ]
        indexes = [
            # The renewal run: due memberships, oldest first.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status__in=["active", "grace"]),
                name="membership_due",
            ),
            models.Index(fields=["creator", "tier", "status"], name="membership_creator_tier"),
        ]

    def __str__(self) -> str:
        return f"membership #{self.pk} of user {self.member_id} → creator {self.creator_id}"

    @property
    def is_live(self) -> bool:
        if self.status in RENEWING_STATUSES:
            return True
        return (
            self.status == MembershipStatus.CANCELLED and self.current_period_end > timezone.now()
        )


class ChargeKind(models.TextChoices):
    JOIN = "join", "Joined"
    RENEWAL = "renewal", "Renewal"
    GIFT = "gift", "Gifted"


class MembershipCharge(models.Model):
    """One month paid for one membership: which ledger transaction paid it and by whom.

    Unique per (membership, period start): a month is paid once however often the renewal
    runs. A gift of N memberships is one ledger transaction with N charge rows.
    """

    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="charges")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=ChargeKind.choices)
    payer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="membership_payments"
    )
    transaction = models.ForeignKey(
        "wallets.LedgerTransaction", on_delete=models.PROTECT, related_name="membership_charges"
    )
    coins = models.BigIntegerField()
    diamonds = models.BigIntegerField()
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["membership", "period_start"], name="membershipcharge_once_per_period"
            ),
            models.CheckConstraint(condition=Q(coins__gt=0), name="membershipcharge_coins_pos"),
            models.CheckConstraint(
                condition=Q(diamonds__gte=0), name="membershipcharge_diamonds_nonneg"
            ),
        ]
        indexes = [models.Index(fields=["transaction"], name="membershipcharge_tx")]

    def __str__(self) -> str:
        return f"{self.kind} of membership {self.membership_id}: {self.coins} coins"


class EventKind(models.TextChoices):
    JOINED = "joined", "Joined"
    RESUMED = "resumed", "Resumed"
    RENEWED = "renewed", "Renewed"
    GIFTED = "gifted", "Gifted a month"
    GRACE = "grace", "Renewal failed: grace period"
    LAPSED = "lapsed", "Lapsed"
    CANCELLED = "cancelled", "Cancelled"
    SWITCH = "switch", "Tier switch at next renewal"
    PRICE_CHANGE = "price_change", "Price change announced"
    TIER_CHANGED = "tier_changed", "Tier edited"


# Events the portal lists as notices to the member.
NOTIFY_KINDS = [
    EventKind.GIFTED,
    EventKind.GRACE,
    EventKind.LAPSED,
    EventKind.PRICE_CHANGE,
]
# Events the member gets an email about (``notify``): the notices and the receipts.
MAIL_KINDS = [*NOTIFY_KINDS, EventKind.JOINED, EventKind.RENEWED, EventKind.CANCELLED]


class MembershipEvent(models.Model):
    """The history of memberships and tiers, written by the service that acted (the audit
    trail), and the notice outbox: rows with ``notify`` and no ``notified_at`` are mails not
    written to the email outbox yet (``memberships.services.notices``)."""

    membership = models.ForeignKey(
        Membership, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    message = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    notify = models.BooleanField(default=False)
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["membership", "-id"], name="membershipevent_recent"),
            models.Index(
                fields=["id"],
                condition=Q(notify=True, notified_at__isnull=True),
                name="membershipevent_outbox",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} (membership {self.membership_id})"
