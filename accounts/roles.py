"""Staff roles, as every app's services check them. The roles are Django groups; which model
permissions each one carries (what the admin menu shows) is the staff console's business
(``staff.permissions.ROLE_PERMISSIONS``). Services and admin actions call ``require_role`` so
a crafted POST cannot do what the menu hides."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from accounts.models import User

SUPPORT = "support"
FINANCE = "finance"
ROLES = (SUPPORT, FINANCE)


def has_role(user: User | AnonymousUser | None, role: str | Iterable[str]) -> bool:
    if user is None or not user.is_authenticated or not user.is_active or not user.is_staff:
        return False
    if user.is_superuser:
        return True
    wanted = {role} if isinstance(role, str) else set(role)
    return user.groups.filter(name__in=wanted).exists()


def require_role(user: User | AnonymousUser | None, role: str | Iterable[str]) -> None:
    """Raise ``PermissionDenied`` unless ``user`` is an active staff member in ``role`` (or one
    of several roles); superusers pass."""
    if not has_role(user, role):
        names = role if isinstance(role, str) else " or ".join(role)
        raise PermissionDenied(f"This needs the {names} role.")
