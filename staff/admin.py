"""The staff console: audit log, wallet console, maker-checker adjustment requests."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from config.errors import DomainError
from staff import services
from staff.forms import AdjustForm, DecisionForm, ReasonForm
from staff.models import AdjustmentRequest, AdjustmentStatus, AuditLog, Wallet
from staff.permissions import FINANCE, SUPPORT, has_role
from wallets.models import Entry

ENTRIES_PER_PAGE = 25


class ReadOnlyModelAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyModelAdmin):
    """Visible to staff, editable by nobody (the database refuses it as well)."""

    list_display = ("created_at", "actor", "action", "object_type", "object_repr", "reason", "ip")
    list_filter = ("action", "object_type")
    search_fields = ("actor__username", "object_repr", "object_id", "reason")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)
    fields = (
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before",
        "after",
        "reason",
        "ip",
    )
    readonly_fields = fields

    def get_actions(self, request):
        return {}


@admin.register(Wallet)
class WalletAdmin(ReadOnlyModelAdmin):
    """Find a wallet, read its ledger, act on it. Money only moves through services."""

    list_display = ("owner", "email", "creator_handle", "balance", "is_frozen", "frozen_reason")
    list_filter = ("is_frozen",)
    search_fields = ("user__username", "user__email", "user__creator__handle")
    list_select_related = ("user", "user__creator")
    fields = ("user", "balance", "is_frozen", "frozen_reason", "created_at")
    readonly_fields = fields
    change_form_template = "admin/staff/wallet_change_form.html"
    show_full_result_count = False

    @admin.display(description="user", ordering="user__username")
    def owner(self, obj):
        return obj.user.username if obj.user_id else "—"

    @admin.display(description="email", ordering="user__email")
    def email(self, obj):
        return obj.user.email if obj.user_id else ""

    @admin.display(description="creator")
    def creator_handle(self, obj):
        creator = getattr(obj.user, "creator", None) if obj.user_id else None
        return f"@{creator.handle}" if creator else ""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:wallet_id>/adjust/", wrap(self.adjust_view), name="staff_wallet_adjust"),
            path(
                "<int:wallet_id>/freeze/",
                wrap(self.freeze_view),
                name="staff_wallet_freeze",
            ),
            path("<int:wallet_id>/ban/", wrap(self.ban_view), name="staff_wallet_ban"),
            path(
                "<int:wallet_id>/unfreeze/",
                wrap(self.unfreeze_view),
                name="staff_wallet_unfreeze",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        wallet = get_object_or_404(Wallet.objects.select_related("user"), pk=object_id)
        entries = (
            Entry.objects.filter(account_id=wallet.pk)
            .select_related("transaction", "transaction__actor")
            .order_by("-id")
        )
        page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("entries_page"))
        user = request.user
        extra_context = {
            **(extra_context or {}),
            "wallet": wallet,
            "entries_page": page,
            "can_adjust": has_role(user, FINANCE),
            "can_freeze": has_role(user, (SUPPORT, FINANCE)),
            "adjust_form": AdjustForm(),
            "reason_form": ReasonForm(),
            "approval_above": services.approval_threshold(),
            "is_banned": wallet.frozen_reason.startswith(services.TRANSACTION_BAN_PREFIX),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- Actions (POST only; each checks its role in the service and is audited) ----------

    def _back(self, wallet_id: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:staff_wallet_change", args=[wallet_id], current_app=self.admin_site.name)
        )

    def _run(self, request, wallet_id: int, form_class, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        wallet = get_object_or_404(Wallet.objects.select_related("user"), pk=wallet_id)
        form = form_class(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                messages.error(request, f"{field}: {' '.join(errors)}")
            return self._back(wallet_id)
        try:
            message = action(wallet, form.cleaned_data)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, message)
        return self._back(wallet_id)

    def adjust_view(self, request, wallet_id: int):
        def act(wallet, data):
            result = services.staff_wallet_adjust(
                actor=request.user,
                user=wallet.user,
                coins=data["coins"],
                reason=data["reason"],
                idempotency_key=str(data["nonce"]),
                request=request,
            )
            if result.status != AdjustmentStatus.POSTED:
                return (
                    f"{data['coins']:+,} coins would take your or this wallet's adjustments "
                    f"over {services.approval_threshold():,} coins in 24 hours: adjustment "
                    f"request #{result.pk} waits for a second finance user."
                )
            return f"{data['coins']:+,} coins posted to {wallet.user.username}'s wallet."

        return self._run(request, wallet_id, AdjustForm, act)

    def freeze_view(self, request, wallet_id: int):
        def act(wallet, data):
            services.staff_wallet_freeze(
                actor=request.user, user=wallet.user, reason=data["reason"], request=request
            )
            return f"{wallet.user.username}'s wallet is frozen."

        return self._run(request, wallet_id, ReasonForm, act)

    def ban_view(self, request, wallet_id: int):
        def act(wallet, data):
            services.staff_wallet_freeze(
                actor=request.user,
                user=wallet.user,
                reason=data["reason"],
                ban=True,
                request=request,
            )
            return f"{wallet.user.username} is banned from transactions."

        return self._run(request, wallet_id, ReasonForm, act)

    def unfreeze_view(self, request, wallet_id: int):
        def act(wallet, data):
            services.staff_wallet_unfreeze(
                actor=request.user, user=wallet.user, reason=data["reason"], request=request
            )
            return f"{wallet.user.username}'s wallet is unfrozen."

        return self._run(request, wallet_id, ReasonForm, act)


@admin.register(AdjustmentRequest)
class AdjustmentRequestAdmin(ReadOnlyModelAdmin):
    list_display = (
        "id",
        "user",
        "signed_coins",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
    )
    list_filter = ("status",)
    search_fields = ("user__username", "reason", "requested_by__username")
    list_select_related = ("user", "requested_by", "decided_by")
    fields = (
        "user",
        "coins",
        "reason",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
        "transaction",
    )
    readonly_fields = fields
    change_form_template = "admin/staff/adjustmentrequest_change_form.html"

    @admin.display(description="coins", ordering="coins")
    def signed_coins(self, obj):
        return format_html("{}", f"{obj.coins:+,}")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/approve/", wrap(self.approve_view), name="staff_adjustment_approve"),
            path("<int:pk>/reject/", wrap(self.reject_view), name="staff_adjustment_reject"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        adjustment = get_object_or_404(AdjustmentRequest, pk=object_id)
        extra_context = {
            **(extra_context or {}),
            "adjustment": adjustment,
            "is_pending": adjustment.status == AdjustmentStatus.PENDING,
            "can_decide": has_role(request.user, FINANCE)
            and adjustment.requested_by_id != request.user.pk,
            "is_own_request": adjustment.requested_by_id == request.user.pk,
            "decision_form": DecisionForm(),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _decide(self, request, pk: int, decide):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        adjustment = get_object_or_404(AdjustmentRequest, pk=pk)
        form = DecisionForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        try:
            message = decide(adjustment, note)
        except PermissionDenied:
            raise
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, message)
        return HttpResponseRedirect(
            reverse(
                "admin:staff_adjustmentrequest_change", args=[pk], current_app=self.admin_site.name
            )
        )

    def approve_view(self, request, pk: int):
        def decide(adjustment, note):
            services.adjustment_request_approve(
                actor=request.user, adjustment=adjustment, note=note, request=request
            )
            return f"Adjustment request #{adjustment.pk} approved and posted."

        return self._decide(request, pk, decide)

    def reject_view(self, request, pk: int):
        def decide(adjustment, note):
            services.adjustment_request_reject(
                actor=request.user, adjustment=adjustment, note=note, request=request
            )
            return f"Adjustment request #{adjustment.pk} rejected."

        return self._decide(request, pk, decide)


from staff import admin_enrolment  # noqa: E402,F401  (the 2FA enrolment-link action on users)
