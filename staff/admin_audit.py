"""Audit rows for the admin's own add / change / delete (catalog, coin packages, users,
groups, OTP devices, ...), so plain model edits are audited like the custom actions.

Each registered ModelAdmin's ``log_addition`` / ``log_change`` / ``log_deletions`` (called by
Django inside the save's transaction, with the request) also writes an ``AuditLog`` row.
"""

from __future__ import annotations

from functools import wraps


def _wrap_model_admin(model_admin) -> None:
    from accounts.audit import audit_record

    if getattr(model_admin, "_staff_audited", False):
        return
    log_addition, log_change, log_deletions = (
        model_admin.log_addition,
        model_admin.log_change,
        model_admin.log_deletions,
    )

    @wraps(log_addition)
    def audited_addition(request, obj, message):
        entry = log_addition(request, obj, message)
        audit_record(
            actor=request.user,
            action="admin_add",
            obj=obj,
            after={"change": message},
            request=request,
        )
        return entry

    @wraps(log_change)
    def audited_change(request, obj, message):
        entry = log_change(request, obj, message)
        audit_record(
            actor=request.user,
            action="admin_change",
            obj=obj,
            after={"change": message},
            request=request,
        )
        return entry

    @wraps(log_deletions)
    def audited_deletions(request, queryset):
        objects = list(queryset)
        entries = log_deletions(request, queryset)
        for obj in objects:
            audit_record(actor=request.user, action="admin_delete", obj=obj, request=request)
        return entries

    model_admin.log_addition = audited_addition
    model_admin.log_change = audited_change
    model_admin.log_deletions = audited_deletions
    model_admin._staff_audited = True


def wire(site) -> None:
    for model_admin in site._registry.values():
        _wrap_model_admin(model_admin)
