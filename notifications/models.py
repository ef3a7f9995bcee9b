"""The email outbox, people's email preferences, and app webhooks (docs/notifications.md).

Other apps write an outbox row in the same database transaction as the event it tells about
(``notifications.services.email_enqueue``); a Celery task sends it after the commit, and a
beat task sweeps up whatever a crash left behind. ``(event, user)`` is unique, so an event
produces at most one message per person however often its code runs.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class EmailCategory(models.TextChoices):
    # Sent even to unverified addresses: they protect the account.
    SECURITY = "security", "Security"
    # Receipts, refunds, payouts: only to a verified address.
    ACCOUNT = "account", "Account activity"
    # The weekly digest: verified addresses that did not opt out; carries List-Unsubscribe.
    DIGEST = "digest", "Weekly digest"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class OutboxEmail(models.Model):
    """One message to one person about one event, rendered when the event happened."""

    event = models.CharField(max_length=200)  # "recharge_receipt:42", "payout_paid:7"
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    to_email = models.EmailField()
    category = models.CharField(max_length=16, choices=EmailCategory.choices)
    template = models.CharField(max_length=100)
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=EmailStatus.choices, default=EmailStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "user"], name="outboxemail_once_per_event")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="outboxemail_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.template} to {self.to_email} ({self.status})"

    @property
    def message_id(self) -> str:
        """The same Message-ID on every attempt: a receiver can drop a resend after a crash."""
        domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "applause.local"
        return f"<outbox-{self.pk}.{int(self.created_at.timestamp())}@{domain}>"


class EmailPreference(models.Model):
    """A person's verified address and what they chose to receive."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_preference"
    )
    # The address that was verified; a changed ``user.email`` is unverified again.
    verified_email = models.EmailField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    weekly_digest = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user} email preferences"

    def is_verified_for(self, email: str) -> bool:
        return bool(email) and self.verified_email.lower() == email.lower()


class WebhookEndpoint(models.Model):
    """A creator's app subscribed to events (``events``: types or ``prefix.*`` patterns)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=80)
    enabled = models.BooleanField(default=True)
    # Set at the first failure since the last success; disabled when it is too old.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["owner", "enabled"], name="webhookendpoint_owner")]

    def __str__(self) -> str:
        return f"{self.url} ({self.owner})"


class WebhookEvent(models.Model):
    """Something that happened to a person, stored once, delivered to each subscribed app."""

    public_id = models.CharField(max_length=40, unique=True)  # evt_…
    key = models.CharField(max_length=200, unique=True)  # "payout.paid:42": one per happening
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhookdelivery_once")
        ]
        indexes = [
            models.Index(
                fields=["endpoint", "id"],
                condition=Q(status="pending"),
                name="webhookdelivery_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id} ({self.status})"
