from datetime import date

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

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
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
