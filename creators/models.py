from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class Creator(models.Model):
    """A user who receives gifts. Earnings live in the ledger (diamond accounts of ``user``)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="creator"
    )
    handle = models.SlugField(max_length=30, unique=True)
    display_name = models.CharField(max_length=80)
    bio = models.CharField(max_length=300, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("handle"), name="creator_handle_unique_ci"),
        ]

    def __str__(self) -> str:
        return f"@{self.handle}"
