"""The gift catalog, gift events (one per gift sent) and the counters gifts keep up."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.templatetags.static import static
from django.utils import timezone


class GiftCategory(models.TextChoices):
    CLASSIC = "classic", "Classic"
    LOVE = "love", "Love"
    FUN = "fun", "Fun"
    LUXURY = "luxury", "Luxury"
    SEASONAL = "seasonal", "Limited time"


class GiftQuerySet(models.QuerySet["Gift"]):
    def available(self, now: datetime | None = None) -> GiftQuerySet:
        now = now or timezone.now()
        return self.filter(
            Q(available_from__isnull=True) | Q(available_from__lte=now),
            Q(available_until__isnull=True) | Q(available_until__gt=now),
            is_active=True,
        )


class Gift(models.Model):
    name = models.CharField(max_length=60)
    slug = models.SlugField(max_length=40, unique=True)
    coins = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    # Uploaded art (admin); without one the seeded art ``static/gifts/<slug>.svg`` is used.
    image = models.FileField(upload_to="gifts/", blank=True)
    category = models.CharField(
        max_length=20, choices=GiftCategory.choices, default=GiftCategory.CLASSIC
    )
    sort_order = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)
    available_from = models.DateTimeField(null=True, blank=True)
    available_until = models.DateTimeField(null=True, blank=True)
    # ISO 3166 alpha-2 codes; empty means everywhere.
    countries = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = GiftQuerySet.as_manager()

    class Meta:
        ordering = ["sort_order", "coins", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(coins__gte=1), name="gift_coins_positive"),
            models.CheckConstraint(
                condition=Q(available_from__isnull=True)
                | Q(available_until__isnull=True)
                | Q(available_until__gt=models.F("available_from")),
                name="gift_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.coins} coins)"

    @property
    def image_url(self) -> str:
        if self.image:
            return self.image.url
        if finders.find(f"gifts/{self.slug}.svg"):
            return static(f"gifts/{self.slug}.svg")
        return static("gifts/rose.svg")

    def is_available(self, now: datetime | None = None, country: str | None = None) -> bool:
        now = now or timezone.now()
        if not self.is_active:
            return False
        if self.available_from and self.available_from > now:
            return False
        if self.available_until and self.available_until <= now:
            return False
        return not country or not self.countries or country.upper() in self.countries


class GiftEvent(models.Model):
    """One gift sent (any quantity): the business row of a gift ledger transaction.

    ``creator`` and ``gift`` carry no database foreign key: on PostgreSQL a foreign key
    check share-locks the parent row, and every concurrent gift to one creator (or of the
    Rose) would then queue on that one row's lock bookkeeping. Django still protects them
    (``on_delete=PROTECT``) and the rows are never deleted.
    """

    # Set by ``gift_send`` on the event it returns (not columns): whether this call sent the
    # gift (False: a repeated key) and the sender's coins after it.
    created: bool
    wallet_coins: int

    # No single-column indexes on sender, creator and goal: giftevent_sender_recent,
    # giftevent_creator_recent and giftevent_goal lead with them (issue #15: every index is
    # one more insert per gift).
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="gifts_sent",
        db_index=False,
    )
    creator = models.ForeignKey(
        "creators.Creator",
        on_delete=models.PROTECT,
        related_name="gift_events",
        db_constraint=False,
        db_index=False,
    )
    gift = models.ForeignKey(
        Gift, on_delete=models.PROTECT, related_name="events", db_constraint=False
    )
    quantity = models.PositiveIntegerField()
    coins = models.BigIntegerField()
    diamonds = models.BigIntegerField()
    live_id = models.CharField(max_length=64, blank=True)
    video_id = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=150, blank=True)
    # The goal this gift counts toward (optional). For an all-or-nothing goal the coins are
    # held in the goal holding account, and ``diamonds`` are credited only if it is met.
    goal = models.ForeignKey(
        "Goal",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="gifts",
        db_constraint=False,
        db_index=False,
    )
    transaction = models.OneToOneField(
        "wallets.LedgerTransaction", on_delete=models.PROTECT, related_name="gift_event"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["creator", "-created_at"], name="giftevent_creator_recent"),
            models.Index(fields=["sender", "-created_at"], name="giftevent_sender_recent"),
            models.Index(
                fields=["goal"],
                include=["coins", "diamonds"],
                condition=Q(goal__isnull=False),
                name="giftevent_goal",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="giftevent_quantity_pos"),
            models.CheckConstraint(condition=Q(coins__gte=1), name="giftevent_coins_pos"),
            models.CheckConstraint(condition=Q(diamonds__gte=0), name="giftevent_diamonds_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity}x gift {self.gift_id} → creator {self.creator_id}"


class GiftTally(models.Model):
    """Coins one sender gave one creator on one (UTC) day: what leaderboards read.

    Upserted by every gift. Only one sender's gifts touch a row, and that sender's gifts
    already queue on their own wallet row, so this adds no contention on a hot creator. No
    index holds coins, diamonds or gifts, so the upsert's update is a HOT update (no index
    entry written; the table keeps free space per page, gifts 0006); the leaderboards read a
    creator's day through the unique (creator, day, sender) index.
    """

    creator = models.ForeignKey(
        "creators.Creator",
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,  # the unique (creator, day, sender) index leads with it
    )
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    coins = models.BigIntegerField(default=0)
    diamonds = models.BigIntegerField(default=0)
    gifts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["creator", "day", "sender"], name="gifttally_creator_day_sender"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day}: user {self.sender_id} → creator {self.creator_id}: {self.coins}"


class DailyGiftSpend(models.Model):
    """Coins a user spent on gifts on one (UTC) day, for the daily spending limit."""

    # The unique (user, day) index leads with the user: no index of its own (issue #15).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    coins = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "day"], name="dailygiftspend_user_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day}: user {self.user_id} spent {self.coins}"


class GoalStatus(models.TextChoices):
    OPEN = "open", "Open"
    MET = "met", "Met"
    MISSED = "missed", "Missed"


class Goal(models.Model):
    """A creator's target in coins by a deadline, for one live stream or for a period.

    Progress (``raised_coins``) is the sum of the coins of the gift events sent toward it: a
    gift never writes this row (a goal is as hot as its creator), it only share-locks it
    (``FOR KEY SHARE``) so that the deadline's settlement, which takes ``FOR UPDATE``, sees
    every gift that got in and no gift gets in after it.

    All-or-nothing goals hold their gifts' coins in the ledger's goal holding account until
    the deadline; ``goal_settle`` then pays the creator (met) or refunds every gifter
    (missed), once, recorded in ``settlement`` (docs/goals.md).
    """

    creator = models.ForeignKey("creators.Creator", on_delete=models.PROTECT, related_name="goals")
    title = models.CharField(max_length=120)
    description = models.CharField(max_length=300, blank=True)
    target_coins = models.BigIntegerField()
    deadline = models.DateTimeField()
    live_id = models.CharField(max_length=64, blank=True)
    all_or_nothing = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=GoalStatus.choices, default=GoalStatus.OPEN)
    # Filled by the settlement at the deadline: what was raised and the ledger transaction
    # that paid the creator or refunded the gifters (all-or-nothing goals only).
    raised_at_close = models.BigIntegerField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    settlement = models.OneToOneField(
        "wallets.LedgerTransaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="goal_settled",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["creator", "-deadline"], name="goal_creator_deadline"),
            models.Index(
                fields=["deadline"], condition=Q(status="open"), name="goal_open_deadline"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(target_coins__gte=1) & Q(target_coins__lte=1_000_000_000),
                name="goal_target_range",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "met", "missed"]), name="goal_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="open") | Q(settled_at__isnull=False),
                name="goal_closed_is_settled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.target_coins} coins by {self.deadline:%Y-%m-%d %H:%M})"
