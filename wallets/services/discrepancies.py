"""Discrepancies: what a reconciliation (payments here, payouts too) found that disagrees, for
staff to look at; never an automatic guess. Resolving one is a staff action, audited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.client_address import ClientRequest
from wallets.models import Discrepancy, DiscrepancyStatus, ReconciliationRun

if TYPE_CHECKING:
    from accounts.models import User


def discrepancy_record(
    *,
    kind: str,
    object_type: str,
    object_id: str,
    expected: str = "",
    found: str = "",
    run: ReconciliationRun | None = None,
    note: str = "",
) -> tuple[Discrepancy, bool]:
    """Open a discrepancy unless the same one is already open. Returns (row, created)."""
    open_rows = Discrepancy.objects.filter(
        kind=kind, object_type=object_type, object_id=object_id, status=DiscrepancyStatus.OPEN
    )
    existing = open_rows.first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            row = Discrepancy.objects.create(
                run=run,
                kind=kind,
                object_type=object_type,
                object_id=str(object_id)[:255],
                expected=str(expected)[:500],
                found=str(found)[:500],
                note=note,
            )
            return row, True
    except IntegrityError:
        return open_rows.get(), False


@transaction.atomic
def discrepancy_resolve(
    *, discrepancy: Discrepancy, actor: User, note: str, request: ClientRequest | None = None
) -> Discrepancy:
    """Staff mark a discrepancy resolved, with a note. Audited (``discrepancy_resolve``) in the
    same transaction; resolving one already resolved changes and audits nothing."""
    before = {"status": discrepancy.status}
    resolved = Discrepancy.objects.filter(pk=discrepancy.pk, status=DiscrepancyStatus.OPEN).update(
        status=DiscrepancyStatus.RESOLVED,
        resolved_by=actor,
        resolved_at=timezone.now(),
        note=(discrepancy.note + "\n" + note).strip() if note else discrepancy.note,
    )
    discrepancy.refresh_from_db()
    if resolved:
        audit_record(
            actor=actor,
            action="discrepancy_resolve",
            obj=discrepancy,
            before=before,
            after={"status": discrepancy.status},
            reason=note,
            request=request,
        )
    return discrepancy
