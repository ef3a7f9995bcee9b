"""The audit trail, as the apps below ``staff`` see it.

Services in ``wallets``, ``creators`` and ``payouts`` record what a person did (a staff
action, a creator changing where payouts go, a refused self-service) here. The staff app sits
on top and owns the ``AuditLog`` table: it plugs its writer in when it loads
(``staff.apps``), so no app below has to import it. Without the staff app installed the
records go to the log only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from config.errors import DomainError

log = logging.getLogger("applause.audit")

Recorder = Callable[..., Any]
_recorder: Recorder | None = None


def audit_recorder_set(recorder: Recorder | None) -> None:
    """Called by the staff app when it loads (``StaffConfig.ready``)."""
    global _recorder
    _recorder = recorder


def audit_record(
    *,
    actor,
    action: str,
    obj=None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    request=None,
) -> None:
    """Append one audit row. Call it inside the action's transaction so both commit together."""
    if _recorder is None:
        log.info("audit %s by %s on %r: %s", action, actor, obj, reason)
        return
    _recorder(
        actor=actor,
        action=action,
        obj=obj,
        before=before,
        after=after,
        reason=reason,
        request=request,
    )


class OwnAccountRefused(DomainError):
    code = "own_account_refused"
    status = 403
    default_message = (
        "Staff may not act on their own wallet, creator profile or payouts. Ask a colleague."
    )


def refuse_own_account(*, actor, owner, action: str, obj=None, request=None) -> None:
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
