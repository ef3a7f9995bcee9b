from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

# Handles that would shadow a URL (``creators/me/``) or confuse people.
RESERVED_HANDLES = frozenset(
    {"me", "new", "admin", "api", "applause", "staff", "support", "settings", "creator"}
)


class Creator(models.Model):
    """A user who receives gifts. Earnings live in the ledger (diamond accounts of ``user``).

    The row is never written per gift: gifts append entries to ``pending_account`` (a hot
    account). ``released_until`` is the hold watermark: pending credits stamped before it have
    been moved to available; only ``earnings_release`` (hourly) touches it.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="creator"
    )
    handle = models.SlugField(max_length=30, unique=True)
    display_name = models.CharField(max_length=80)
    bio = models.CharField(max_length=300, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Created with the creator so a gift finds it in the same query as the creator.
    pending_account = models.OneToOneField(
        "wallets.Account",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    released_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("handle"), name="creator_handle_unique_ci"),
        ]

    def __str__(self) -> str:
        return f"@{self.handle}"

    @property
    def can_receive_gifts(self) -> bool:
        return self.is_active and self.user.is_active and self.user.is_adult


class LiveSession(models.Model):
    """A creator's live stream, started and ended from the dashboard ("go live").

    Its ``live_id`` is what gifts from the creator page carry while it is open, and what the
    overlay URL for streaming software names. At most one session per creator is open (a
    partial unique index), so two "go live" clicks at once make one session.
    """

    creator = models.ForeignKey(Creator, on_delete=models.PROTECT, related_name="live_sessions")
    live_id = models.CharField(max_length=64)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["creator"],
                condition=models.Q(ended_at__isnull=True),
                name="live_session_one_open_per_creator",
            ),
            models.UniqueConstraint(fields=["creator", "live_id"], name="live_session_id_unique"),
            models.CheckConstraint(
                condition=models.Q(ended_at__isnull=True)
                | models.Q(ended_at__gte=models.F("started_at")),
                name="live_session_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["ended_at", "started_at"], name="live_session_open")]

    def __str__(self) -> str:
        return f"@{self.creator.handle} {self.live_id}"
