"""Creator moderation of gift messages, and what became of each message on a live.

Nothing here is written by the gift itself: the gift send path (one SQL round trip on
PostgreSQL) stays as it is, and a message's fate is worked out when it is read
(``moderation.selectors``) from the creator's settings and the decisions below.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

BLOCKED_WORDS_MAX = 200
BLOCKED_WORD_LENGTH_MAX = 40


class CreatorModeration(models.Model):
    """A creator's own rules: blocked words (on top of the platform's
    ``GIFT_MESSAGE_BLOCKLIST``) and whether messages wait for approval."""

    creator = models.OneToOneField(
        "creators.Creator", on_delete=models.CASCADE, primary_key=True, related_name="moderation"
    )
    blocked_words = models.JSONField(default=list, blank=True)
    hold_messages = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"moderation of creator {self.creator_id}"


class HoldPeriod(models.Model):
    """While a period is open, every new message to the creator waits for approval. Messages
    sent during a closed period still wait: turning the option off releases nothing."""

    creator = models.ForeignKey(
        "creators.Creator", on_delete=models.CASCADE, related_name="hold_periods"
    )
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["creator"],
                condition=Q(ended_at__isnull=True),
                name="holdperiod_one_open_per_creator",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="holdperiod_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"hold for creator {self.creator_id} from {self.started_at:%Y-%m-%d %H:%M}"


class MutedViewer(models.Model):
    """A viewer whose messages the creator does not want shown: their gifts still arrive
    (and count), without text."""

    creator = models.ForeignKey(
        "creators.Creator", on_delete=models.CASCADE, related_name="muted_viewers"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["creator", "user"], name="mutedviewer_unique")
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} muted by creator {self.creator_id}"


class HiddenBy(models.TextChoices):
    CREATOR = "creator", "The creator"
    STAFF = "staff", "Staff (after a report)"


class MessageDecision(models.Model):
    """What the creator or staff decided about one gift's message: approved (when held),
    hidden (rejected by the creator, or hidden by staff after a report), dismissed from the
    pinned strip. ``changed_at`` lets open live feeds pick up each change."""

    gift_event = models.OneToOneField(
        "gifts.GiftEvent", on_delete=models.PROTECT, primary_key=True, related_name="decision"
    )
    creator = models.ForeignKey("creators.Creator", on_delete=models.CASCADE, related_name="+")
    live_id = models.CharField(max_length=64, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    hidden_at = models.DateTimeField(null=True, blank=True)
    hidden_by = models.CharField(max_length=10, choices=HiddenBy.choices, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(
                fields=["creator", "live_id", "changed_at"], name="messagedecision_changes"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(hidden_at__isnull=True) | ~Q(hidden_by=""),
                name="messagedecision_hidden_says_by_whom",
            ),
        ]

    def __str__(self) -> str:
        return f"decision on gift event {self.gift_event_id}"


class ReportReason(models.TextChoices):
    SPAM = "spam", "Spam or scam"
    ABUSE = "abuse", "Harassment or hate"
    SEXUAL = "sexual", "Sexual content"
    OTHER = "other", "Something else"


class ReportStatus(models.TextChoices):
    OPEN = "open", "Open"
    HIDDEN = "hidden", "Message hidden"
    DISMISSED = "dismissed", "Dismissed"


class MessageReport(models.Model):
    """A signed-in viewer's report of a gift message: the support team's moderation queue."""

    gift_event = models.ForeignKey(
        "gifts.GiftEvent", on_delete=models.PROTECT, related_name="reports"
    )
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=10, choices=ReportReason.choices)
    note = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=10, choices=ReportStatus.choices, default=ReportStatus.OPEN
    )
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["gift_event", "reporter"], name="messagereport_once_per_reporter"
            ),
            models.CheckConstraint(
                condition=Q(status="open", resolved_at__isnull=True)
                | (~Q(status="open") & Q(resolved_at__isnull=False)),
                name="messagereport_resolved_when_closed",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="messagereport_queue")]

    def __str__(self) -> str:
        return f"report {self.pk} of gift event {self.gift_event_id}"
