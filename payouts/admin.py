"""Staff console for payouts: every action calls a service, records its actor, and is audited."""

import csv
from collections.abc import Callable, Iterator

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.audit import audit_record
from accounts.roles import FINANCE, require_role
from config.api import signed_in_user
from config.errors import DomainError
from config.keyset import keyset
from payouts.models import (
    Payout,
    PayoutBatch,
    PayoutEvent,
    PayoutMethod,
    PayoutStatus,
    Rail,
    TaxFormStatus,
)
from payouts.services import (
    payout_approve,
    payout_cancel,
    payout_mark_failed,
    payout_mark_paid,
    payout_method_record_tax_form,
    payout_method_verify,
    payout_retry,
)
from payouts.statements.downloads import csv_safe

# Payouts read a query at a time by the bank CSV export.
EXPORT_PAGE = 2000


def _finance_only(model_admin: admin.ModelAdmin, request: HttpRequest) -> bool:
    """Money out is the finance role's, checked in the action itself (not only the menu)."""
    try:
        require_role(request.user, FINANCE)
    except PermissionDenied as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return False
    return True


class _Echo:
    """A file-like object whose ``write`` returns the line: csv.writer rows for streaming."""

    def write(self, value: str) -> str:
        return value


class ReadOnlyMixin:
    model: type[models.Model]

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def get_readonly_fields(
        self, request: HttpRequest, obj: models.Model | None = None
    ) -> list[str]:
        return [f.name for f in self.model._meta.fields]


@admin.register(PayoutMethod)
class PayoutMethodAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "creator",
        "rail",
        "account_holder",
        "iban_masked",
        "stripe_account_id",
        "is_verified",
        "verified_by",
        "verification_requested_by",
        "tax_form_status",
        "destination_changed_at",
        "updated_at",
    )
    list_filter = ("rail", "is_verified", "tax_form_status")
    search_fields = ("creator__handle", "account_holder", "stripe_account_id")
    list_select_related = ("creator", "verified_by", "verification_requested_by")
    exclude = ("iban",)
    actions = ["verify_action", "tax_w9_action", "tax_w8ben_action"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: models.Model | None = None
    ) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name != "iban"] + ["iban_masked"]

    @admin.display(description="IBAN")
    def iban_masked(self, obj: PayoutMethod) -> str:
        return f"•••• {obj.iban_last4}" if obj.iban else ""

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[PayoutMethod],
        action: str,
        run: Callable[[PayoutMethod], PayoutMethod],
    ) -> None:
        if not _finance_only(self, request):
            return
        done = 0
        for method in queryset.select_related("creator__user"):
            try:
                # The service refuses (and audits) a staff member's own method, then
                # audits the action in its transaction.
                run(method)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{method.creator}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{action}: {done} payout method(s).", messages.SUCCESS)

    @admin.action(
        description="Verify the selected methods (bank details: a second finance member "
        "approves; Stripe: ask Stripe)",
        permissions=["change"],
    )
    def verify_action(self, request: HttpRequest, queryset: QuerySet[PayoutMethod]) -> None:
        waiting: list[str] = []

        def verify(method: PayoutMethod) -> PayoutMethod:
            method = payout_method_verify(
                method=method, actor=signed_in_user(request), request=request
            )
            if not method.is_verified and method.verification_requested_by_id == request.user.pk:
                waiting.append(str(method.creator))
            return method

        self._each(request, queryset, "payout_method_verify", verify)
        if waiting:
            self.message_user(
                request,
                f"Verification proposed for {', '.join(waiting)}: a different finance member "
                "must now verify it too.",
                messages.WARNING,
            )

    @admin.action(description="Record W-9 received", permissions=["change"])
    def tax_w9_action(self, request: HttpRequest, queryset: QuerySet[PayoutMethod]) -> None:
        self._each(
            request,
            queryset,
            "payout_method_tax_form",
            lambda m: payout_method_record_tax_form(
                method=m, status=TaxFormStatus.W9, actor=signed_in_user(request), request=request
            ),
        )

    @admin.action(description="Record W-8BEN received", permissions=["change"])
    def tax_w8ben_action(self, request: HttpRequest, queryset: QuerySet[PayoutMethod]) -> None:
        self._each(
            request,
            queryset,
            "payout_method_tax_form",
            lambda m: payout_method_record_tax_form(
                method=m, status=TaxFormStatus.W8BEN, actor=signed_in_user(request), request=request
            ),
        )


class PayoutEventInline(admin.TabularInline):
    model = PayoutEvent
    fields = ("created_at", "from_status", "to_status", "actor", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class PayoutInline(admin.TabularInline):
    model = Payout
    fields = ("id", "creator", "diamonds", "amount", "status", "rail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(PayoutBatch)
class PayoutBatchAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "started_at",
        "finished_at",
        "actor",
        "payouts_created",
        "diamonds",
        "payouts_resent",
    )
    inlines = [PayoutInline]
    date_hierarchy = "started_at"


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Payout)
class PayoutAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "creator",
        "diamonds",
        "amount",
        "status",
        "rail",
        "hold_reason",
        "held_until",
        "failure_reason",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "rail", "batch")
    search_fields = ("creator__handle", "rail_reference")
    list_select_related = ("creator",)
    date_hierarchy = "created_at"
    inlines = [PayoutEventInline]
    exclude = ("destination",)
    actions = [
        "approve_action",
        "cancel_action",
        "retry_action",
        "mark_paid_action",
        "mark_failed_action",
        "export_csv_action",
    ]

    def get_readonly_fields(
        self, request: HttpRequest, obj: models.Model | None = None
    ) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name != "destination"]

    def has_approve_permission(self, request: HttpRequest) -> bool:
        # Approving money out is the finance role's (the staff app's permission).
        return request.user.has_perm("staff.approve_payout")

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Payout],
        action: str,
        run: Callable[[Payout], Payout],
    ) -> None:
        if not _finance_only(self, request):
            return
        done = 0
        for payout in queryset.select_related("creator__user"):
            try:
                # The service refuses (and audits) a staff member's own payouts, then
                # audits the action in its transaction.
                run(payout)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"Payout #{payout.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{action}: {done} payout(s).", messages.SUCCESS)

    def _ask_reason(
        self, request: HttpRequest, queryset: QuerySet[Payout], action_name: str, title: str
    ) -> str | HttpResponse:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            reason: str = form.cleaned_data["reason"]
            return reason
        render_response = render(
            request,
            "payouts/admin_reason.html",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "form": form,
                "payouts": queryset,
                "action": action_name,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )
        return render_response

    @admin.action(description="Approve the selected payouts", permissions=["approve"])
    def approve_action(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(
            request,
            queryset,
            "payout_approve",
            lambda p: payout_approve(payout=p, actor=signed_in_user(request), request=request),
        )

    @admin.action(
        description="Cancel the selected payouts (diamonds go back)", permissions=["change"]
    )
    def cancel_action(
        self, request: HttpRequest, queryset: QuerySet[Payout]
    ) -> HttpResponse | None:
        reason = self._ask_reason(request, queryset, "cancel_action", "Cancel payouts")
        if not isinstance(reason, str):
            return reason
        self._each(
            request,
            queryset,
            "payout_cancel",
            lambda p: payout_cancel(
                payout=p, actor=signed_in_user(request), reason=reason, request=request
            ),
        )
        return None

    @admin.action(
        description="Send the selected stuck payouts again (same idempotency key)",
        permissions=["change"],
    )
    def retry_action(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(
            request,
            queryset,
            "payout_retry",
            lambda p: payout_retry(payout=p, actor=signed_in_user(request), request=request),
        )

    @admin.action(
        description="Mark the selected manual payouts paid (bank run done)", permissions=["change"]
    )
    def mark_paid_action(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(
            request,
            queryset,
            "payout_mark_paid",
            lambda p: payout_mark_paid(payout=p, actor=signed_in_user(request), request=request),
        )

    @admin.action(
        description="Mark the selected payouts failed (diamonds go back)", permissions=["change"]
    )
    def mark_failed_action(
        self, request: HttpRequest, queryset: QuerySet[Payout]
    ) -> HttpResponse | None:
        reason = self._ask_reason(request, queryset, "mark_failed_action", "Mark payouts failed")
        if not isinstance(reason, str):
            return reason
        self._each(
            request,
            queryset,
            "payout_mark_failed",
            lambda p: payout_mark_failed(
                payout=p, actor=signed_in_user(request), reason=reason, request=request
            ),
        )
        return None

    @admin.action(
        description="Export approved manual payouts as CSV (for the bank run)",
        permissions=["change"],
    )
    def export_csv_action(
        self, request: HttpRequest, queryset: QuerySet[Payout]
    ) -> StreamingHttpResponse | None:
        if not _finance_only(self, request):
            return None
        payouts = (
            queryset.filter(
                rail=Rail.MANUAL, status__in=[PayoutStatus.REQUESTED, PayoutStatus.PROCESSING]
            )
            .select_related("creator__payout_method")
            .order_by("id")
        )
        # Streamed (a bank run of 100k payouts is never held in memory): rows are read from the
        # database a page at a time as the download goes, each page a query of its own keyed on
        # the id (not a server-side cursor: the download outlives any one transaction, and
        # behind PgBouncer's transaction pooling a cursor is gone by the next fetch, #23).
        count = payouts.count()
        audit_record(
            actor=request.user,
            action="payout_export_csv",
            before={},
            after={"payouts": count},
            request=request,
        )

        def rows() -> Iterator[object]:
            writer = csv.writer(_Echo())
            yield writer.writerow(
                [
                    "payout_id",
                    "creator",
                    "account_holder",
                    "iban",
                    "amount",
                    "currency",
                    "reference",
                ]
            )
            for payout in keyset(payouts, order=("id",), size=EXPORT_PAGE):
                method = getattr(payout.creator, "payout_method", None)
                yield writer.writerow(
                    [
                        payout.pk,
                        payout.creator.handle,
                        csv_safe(method.account_holder if method else ""),
                        payout.destination,
                        payout.amount.amount,
                        payout.amount.currency,
                        f"Applause payout {payout.pk}",
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="payouts-{stamp}.csv"'
        return response
