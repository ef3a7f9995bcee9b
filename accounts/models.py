from datetime import date

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    """The platform's user. Age matters: only adults buy coins, send and receive gifts."""

    email = models.EmailField("email address", blank=True)
    date_of_birth = models.DateField(null=True, blank=True)

    def age_on(self, day: date) -> int | None:
        if self.date_of_birth is None:
            return None
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    @property
    def is_adult(self) -> bool:
        from django.conf import settings

        age = self.age_on(timezone.localdate())
        return age is not None and age >= settings.MINIMUM_AGE

    @property
    def is_creator(self) -> bool:
        # The creator profile lives in the ``creators`` app (a reverse one-to-one).
        return hasattr(self, "creator")

    @property
    def creator_handle(self) -> str | None:
        creator = getattr(self, "creator", None)
        return creator.handle if creator else None


class IdempotencyRecord(models.Model):
    """A money POST's first answer, replayed for retries with the same key and body."""

    # The unique (user, key) index leads with the user: no index of its own (issue #15).
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    path = models.CharField(max_length=255)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.response_status})"


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError(f"{self.model.__name__} rows are immutable.")

    def delete(self):
        raise PermissionError(f"{self.model.__name__} rows are immutable.")

    delete.queryset_only = True  # type: ignore[attr-defined]  # Django reads it off the method


class ImmutableModel(models.Model):
    """Rows written once and never changed (the ledger's, the audit log's): updates and deletes
    are refused in the model layer, and a PostgreSQL trigger backs each table."""

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError(f"{type(self).__name__} rows are immutable.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{type(self).__name__} rows are immutable.")


class AuditLog(ImmutableModel):
    """One row per action a person takes on money or on someone's account (a staff action, a
    creator changing where payouts go, an admin login). Never updated or deleted: the model
    refuses it and, on PostgreSQL, a trigger refuses it too.

    It sits here, at the bottom, so the services of every app write their own rows inside their
    own transactions (``accounts.audit.audit_record``). The table keeps the name it had when
    the staff app owned it (moved without copying a row: accounts migration 0002); the staff
    console shows it through a proxy (``staff.AuditLog``).
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "staff_auditlog"
        ordering = ["-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="auditlog_object"),
            models.Index(fields=["actor", "-created_at"], name="auditlog_actor_recent"),
            models.Index(fields=["action", "-created_at"], name="auditlog_action_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.object_repr}"
