"""Demo users for ``make run``. Idempotent: running it again changes nothing."""

from datetime import date
from typing import Any

from django.contrib.auth import get_user_model

DEMO_PASSWORD = "applause-demo"  # noqa: S105 (the demo logins make run prints)
DEMO_USERS: dict[str, dict[str, Any]] = {
    "staff": {"email": "staff@example.com", "is_staff": True, "is_superuser": True},
    "viewer": {"email": "viewer@example.com"},
    "creator": {"email": "creator@example.com"},
}


def seed(out) -> None:
    User = get_user_model()
    for username, extra in DEMO_USERS.items():
        user, created = User.objects.get_or_create(
            username=username, defaults={"date_of_birth": date(1995, 5, 17), **extra}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
    out.append(f"demo logins (password {DEMO_PASSWORD!r}): staff, viewer, creator")
