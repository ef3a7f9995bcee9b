import uuid

from django.utils import timezone

from accounts.tests.factories import UserFactory
from notifications.models import EmailPreference


def verified_user(**fields):
    """A user whose address is verified (so account mail reaches them)."""
    fields.setdefault("username", f"mail-{uuid.uuid4().hex[:10]}")
    user = UserFactory(**fields)
    EmailPreference.objects.update_or_create(
        user=user, defaults={"verified_email": user.email, "verified_at": timezone.now()}
    )
    return user
