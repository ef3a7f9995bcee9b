"""The staff console's own rows: maker-checker adjustment requests, 2FA enrolment links, and
two proxies the console hangs its screens on: ``Wallet`` (coin wallets only) and ``AuditLog``
(the rows live in ``accounts``, below every app)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts import models as accounts_models
from wallets.models import Account, AccountKind, LedgerTransaction


class AuditLog(accounts_models.AuditLog):
    """The audit log as the staff console shows it (Staff console › Audit log). The rows live
    in ``accounts.AuditLog`` (below every app, so services write their own); this proxy keeps
    the console's place, its address and the ``staff.view_auditlog`` permission."""

    class Meta:
        proxy = True
        ordering = ["-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"


class WalletManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(kind=AccountKind.WALLET)


class Wallet(Account):
    """A user's coin wallet, as the staff console shows it (read-only; actions via services).

    The role permissions hang on this model: see ``staff.permissions.ROLE_PERMISSIONS``.
    """

    objects = WalletManager()  # type: ignore[misc]  # a proxy narrowing its manager

    class Meta:
        proxy = True
        verbose_name = "wallet"
        permissions = [
            ("freeze_wallet", "Can freeze and unfreeze wallets"),
            ("adjust_wallet", "Can credit and debit wallets"),
            ("approve_adjustment", "Can approve another staff member's adjustment"),
            ("refund_recharge", "Can refund recharges"),
            ("approve_payout", "Can approve, cancel, retry and settle payouts"),
            ("resolve_discrepancy", "Can resolve reconciliation discrepancies"),
        ]

    def __str__(self) -> str:
        return f"Wallet of {self.user.username}" if self.user_id and self.user else "Wallet"


class AdjustmentStatus(models.TextChoices):
    POSTED = "posted", "Posted at once (within the 24-hour limit)"
    PENDING = "pending", "Awaiting a second approver"
    APPROVED = "approved", "Approved and posted"
    REJECTED = "rejected", "Rejected"


class AdjustmentRequest(models.Model):
    """Every staff credit or debit of a wallet. Within ``ADJUSTMENT_APPROVAL_ABOVE`` coins over
    24 hours (per actor and per wallet) it is ``posted`` at once; beyond, one finance user asks
    and a different one approves (maker-checker); only then does it reach the ledger.
    ``requested_by`` is empty for ``grant_coins`` run at the console without ``--by``."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="adjustment_requests"
    )
    coins = models.BigIntegerField()
    reason = models.CharField(max_length=500)
    status = models.CharField(
        max_length=16, choices=AdjustmentStatus.choices, default=AdjustmentStatus.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    # The form's (or command's) idempotency key: a double submit finds its first row.
    request_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(coins=0), name="adjustmentrequest_coins_nonzero"),
            # The checker is never the maker, whatever the code above does.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")),
                name="adjustmentrequest_four_eyes",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-requested_at"], name="adjreq_status_recent"),
            # The rolling 24-hour totals, per actor and per wallet.
            models.Index(fields=["requested_by", "requested_at"], name="adjreq_actor_recent"),
            models.Index(fields=["user", "requested_at"], name="adjreq_user_recent"),
        ]

    def __str__(self) -> str:
        return f"Adjustment request #{self.pk}: {self.coins:+d} coins ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"adjustment-request:{self.pk}"


class EnrolmentLink(models.Model):
    """A one-time link that lets a staff member set up their first two-factor device.

    A password alone never enrols a device: a superuser issues the link (admin action or
    ``manage.py staff_totp --enrol-link USER``). Only a SHA-256 digest of the link's secret is
    stored; it works once, for ``ENROL_LINK_TTL_HOURS`` (24), and a newer link ends older ones.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64, unique=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty when issued on the command line.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "2FA enrolment link"

    def __str__(self) -> str:
        return f"2FA enrolment link #{self.pk} for {self.user}"

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and self.revoked_at is None and self.expires_at > timezone.now()
