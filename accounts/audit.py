"""The audit trail: one append-only row per thing a person does to money or to an account.

It lives at the bottom (beside the User) so each service writes its own row inside its own
transaction, the way Zulip's ``do_*`` actions write ``RealmAuditLog``: an admin action, an
API call and a management command then leave the same trail, and the row commits or rolls
back with the change it records. The staff console (on top) only reads it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model

from accounts.client_address import ClientRequest, client_address
from accounts.models import AuditLog
from config.errors import DomainError

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from accounts.models import User


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    # Money, Decimal, datetimes, UUIDs: whatever Django can say as JSON, stored as plain JSON.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def audit_record(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    obj: Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    request: ClientRequest | None = None,
) -> AuditLog:
    """Append one audit row. Call it inside the action's transaction so both commit together."""
    object_type = object_id = object_repr = ""
    if obj is not None:
        object_type = obj._meta.label_lower
        object_id = str(obj.pk)
        object_repr = str(obj)[:200]
    return AuditLog.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action[:64],
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        before=_jsonable(before),
        after=_jsonable(after),
        reason=reason or "",
        ip=client_address(request),
    )


class OwnAccountRefused(DomainError):
    code = "own_account_refused"
    status = 403
    default_message = (
        "Staff may not act on their own wallet, creator profile or payouts. Ask a colleague."
    )


def refuse_own_account(
    *,
    actor: User | AnonymousUser | None,
    owner: User | None,
    action: str,
    obj: Model | None = None,
    request: ClientRequest | None = None,
) -> None:
    """Refuse (and audit) a staff action on the actor's own wallet, creator profile or payouts.

    Call it before the action opens its transaction: the refusal's audit row is written (and,
    outside any transaction, committed) before the error is raised, so the attempt stays on
    record even though the action itself changes nothing.
    """
    if actor is None or owner is None or getattr(actor, "pk", None) != getattr(owner, "pk", None):
        return
    if not (getattr(actor, "is_staff", False) or getattr(actor, "is_superuser", False)):
        return  # a viewer or creator acting on their own things through their own pages
    audit_record(
        actor=actor,
        action="own_account_refused",
        obj=obj,
        after={"refused": action},
        reason=f"{action} refused: staff may not act on their own accounts",
        request=request,
    )
    raise OwnAccountRefused()
