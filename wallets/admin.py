import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import format_html

from accounts.roles import FINANCE, has_role
from config.api import signed_in_user
from config.errors import DomainError
from wallets.models import (
    Account,
    CoinPackage,
    CoinPackagePrice,
    CoinPackagePriceChange,
    Discrepancy,
    Entry,
    LedgerTransaction,
    PriceChangeStatus,
    Recharge,
    RechargeRefund,
    ReconciliationRun,
    StripeCustomer,
    StripeDispute,
    StripeEvent,
)
from wallets.services import (
    account_balance,
    coin_package_price_approve,
    coin_package_price_propose,
    coin_package_price_reject,
    discrepancy_resolve,
    recharge_refund_by_staff,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money is shown, never edited here: changes go through services with a reason."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class EntryInline(admin.TabularInline):
    model = Entry
    fields = ("id", "account", "amount", "balance_after", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "user", "unit", "live_balance", "is_frozen", "is_hot")
    list_filter = ("kind", "unit", "is_frozen", "is_hot")
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)

    @admin.display(description="balance")
    def live_balance(self, obj: Account) -> int:
        return account_balance(obj)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "idempotency_key", "actor", "memo", "created_at")
    list_filter = ("kind",)
    search_fields = ("idempotency_key", "reference", "memo")
    inlines = [EntryInline]
    date_hierarchy = "created_at"


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "transaction", "account", "amount", "balance_after", "created_at")
    search_fields = ("account__user__username",)
    list_select_related = ("transaction", "account")


# --- Coin packages, recharges, refunds, reconciliation --------------------------------------


class CoinPackagePriceInline(admin.TabularInline):
    """Prices are shown here, never edited: a price (new or changed) is a *coin package price
    change* that a second finance member approves (``CoinPackagePriceChangeAdmin``)."""

    model = CoinPackagePrice
    extra = 0
    fields = ("price",)
    readonly_fields = ("price",)
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(CoinPackage)
class CoinPackageAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "coins",
        "bonus_coins",
        "prices_list",
        "is_active",
        "available_from",
        "available_until",
        "sort_order",
    )
    list_editable = ("is_active", "sort_order")
    list_filter = ("is_active",)
    inlines = [CoinPackagePriceInline]

    def get_readonly_fields(
        self, request: HttpRequest, obj: Model | None = None
    ) -> list[str] | tuple[str, ...]:
        # What a package gives for its price is part of the price: fixed once created (a
        # different bundle is a new package, whose prices need a second finance member).
        return ("coins", "bonus_coins") if obj is not None else ()

    @admin.display(description="prices")
    def prices_list(self, obj: CoinPackage) -> str:
        return ", ".join(str(p.price) for p in obj.prices.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[CoinPackage]:
        return super().get_queryset(request).prefetch_related("prices")


class PriceChangeForm(forms.ModelForm):
    class Meta:
        model = CoinPackagePriceChange
        fields = ("package", "price", "reason")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        package, price = data.get("package"), data.get("price")
        if package is not None and price is not None:
            waiting = CoinPackagePriceChange.objects.filter(
                package=package,
                price_currency=str(price.currency),
                status=PriceChangeStatus.PENDING,
            ).exists()
            if waiting:
                raise forms.ValidationError(
                    "A price change for this package and currency is already waiting: approve "
                    "or reject it first."
                )
        return data


@admin.register(CoinPackagePriceChange)
class CoinPackagePriceChangeAdmin(admin.ModelAdmin):
    """Propose a price (Add), and approve or reject someone else's proposal (actions)."""

    form = PriceChangeForm
    list_display = (
        "id",
        "package",
        "price",
        "previous_amount",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
    )
    list_filter = ("status", "price_currency")
    list_select_related = ("package", "requested_by", "decided_by")
    actions = ["approve_action", "reject_action"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("wallets.change_coinpackageprice")

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # The change list's actions need it; the change form itself is read-only.
        return obj is None and request.user.has_perm("wallets.change_coinpackageprice")

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: CoinPackagePriceChange, form: forms.ModelForm, change: bool
    ) -> None:
        created = coin_package_price_propose(
            actor=signed_in_user(request),
            package=form.cleaned_data["package"],
            price=form.cleaned_data["price"],
            reason=form.cleaned_data["reason"],
            request=request,
        )
        obj.pk = created.pk

    def _decide(
        self,
        request: HttpRequest,
        queryset: QuerySet[CoinPackagePriceChange],
        decide: Callable[[CoinPackagePriceChange], CoinPackagePriceChange],
        verb: str,
    ) -> None:
        done = 0
        for change in queryset:
            try:
                decide(change)
                done += 1
            except PermissionDenied as exc:
                self.message_user(request, f"#{change.pk}: {exc}", messages.ERROR)
            except DomainError as exc:
                self.message_user(request, f"#{change.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{verb} {done} price change(s).", messages.SUCCESS)

    @admin.action(description="Approve the selected price changes (not your own)")
    def approve_action(
        self, request: HttpRequest, queryset: QuerySet[CoinPackagePriceChange]
    ) -> None:
        self._decide(
            request,
            queryset,
            lambda c: coin_package_price_approve(
                actor=signed_in_user(request), change=c, request=request
            ),
            "Approved",
        )

    @admin.action(description="Reject the selected price changes")
    def reject_action(
        self, request: HttpRequest, queryset: QuerySet[CoinPackagePriceChange]
    ) -> None:
        self._decide(
            request,
            queryset,
            lambda c: coin_package_price_reject(
                actor=signed_in_user(request),
                change=c,
                note=f"rejected in the admin by {request.user}",
                request=request,
            ),
            "Rejected",
        )


def stripe_dashboard_payment_url(payment_intent: str) -> str:
    """The PaymentIntent's page in Stripe's dashboard (test-mode keys live under ``/test``)."""
    base = settings.STRIPE_DASHBOARD_URL.rstrip("/")
    is_test_mode = settings.STRIPE_SECRET_KEY.startswith(("sk_test_", "rk_test_"))
    return f"{base}{'/test' if is_test_mode else ''}/payments/{quote(payment_intent, safe='')}"


def stripe_dashboard_link(payment_intent: str | None) -> str:
    if not payment_intent:
        return "-"
    return format_html(
        '<a href="{}" target="_blank" rel="noopener noreferrer">Open in Stripe</a>',
        stripe_dashboard_payment_url(payment_intent),
    )


class RefundForm(forms.Form):
    reason = forms.CharField(max_length=400, widget=forms.Textarea(attrs={"rows": 3}))
    coins = forms.IntegerField(
        required=False, min_value=1, help_text="Leave empty to refund everything not yet refunded."
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


class RechargeRefundInline(admin.TabularInline):
    model = RechargeRefund
    fields = (
        "stripe_id",
        "source",
        "status",
        "amount",
        "coins",
        "coins_from_wallet",
        "coins_to_debt",
        "reason",
        "actor",
        "created_at",
        "stripe_dashboard",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    @admin.display(description="Stripe dashboard")
    def stripe_dashboard(self, obj: Any) -> str:
        # Refunds and disputes are listed on their PaymentIntent's page.
        return stripe_dashboard_link(obj.recharge.payment_intent)


@admin.register(Recharge)
class RechargeAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "coins",
        "price",
        "status",
        "coins_refunded",
        "payment_intent",
        "created_at",
    )
    list_filter = ("status", "price_currency")
    search_fields = ("user__username", "payment_intent", "=id", "=card_fingerprint")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    inlines = [RechargeRefundInline]
    actions = ["refund_action"]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Viewing is allowed; the form itself is read-only (every field below).
        return request.user.has_perm("wallets.view_recharge")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Model | None = None
    ) -> list[str] | tuple[str, ...]:
        fields = [f.name for f in self.model._meta.fields]
        below_payment_intent = fields.index("payment_intent") + 1
        return [*fields[:below_payment_intent], "stripe_dashboard", *fields[below_payment_intent:]]

    @admin.display(description="Stripe dashboard")
    def stripe_dashboard(self, obj: Any) -> str:
        return stripe_dashboard_link(obj.payment_intent)

    @admin.action(description="Refund the selected recharges (through Stripe, with clawback)")
    def refund_action(
        self, request: HttpRequest, queryset: QuerySet[Recharge]
    ) -> HttpResponse | None:
        if not request.user.has_perm("wallets.change_recharge"):
            self.message_user(request, "You may not refund recharges.", messages.ERROR)
            return None
        form = RefundForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            done = 0
            for recharge in queryset:
                try:
                    recharge_refund_by_staff(
                        actor=signed_in_user(request),
                        recharge=recharge,
                        reason=form.cleaned_data["reason"],
                        coins=form.cleaned_data["coins"],
                        idempotency_key=f"{form.cleaned_data['idempotency_key']}-{recharge.pk}",
                        request=request,
                    )
                    done += 1
                except PermissionDenied as exc:
                    self.message_user(request, f"Recharge #{recharge.pk}: {exc}", messages.ERROR)
                except DomainError as exc:
                    self.message_user(
                        request, f"Recharge #{recharge.pk}: {exc.message}", messages.ERROR
                    )
            if done:
                self.message_user(request, f"Refunded {done} recharge(s).", messages.SUCCESS)
            return None
        if form.is_bound is False:
            form = RefundForm(initial={"idempotency_key": uuid.uuid4().hex})
        return render(
            request,
            "wallets/admin_refund.html",
            {
                **self.admin_site.each_context(request),
                "title": "Refund recharges",
                "form": form,
                "recharges": queryset,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )


@admin.register(RechargeRefund)
class RechargeRefundAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "recharge",
        "source",
        "status",
        "stripe_id",
        "amount",
        "coins",
        "coins_to_debt",
        "actor",
        "created_at",
    )
    list_filter = ("source", "status")
    search_fields = ("stripe_id", "recharge__user__username")
    readonly_fields = ("stripe_dashboard",)

    @admin.display(description="Stripe dashboard")
    def stripe_dashboard(self, obj: Any) -> str:
        return stripe_dashboard_link(obj.recharge.payment_intent)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "object_id", "result", "received_at", "processed_at")
    list_filter = ("type",)
    search_fields = ("event_id", "object_id")


@admin.register(StripeDispute)
class StripeDisputeAdmin(ReadOnlyAdmin):
    list_display = ("dispute_id", "recharge", "status", "amount", "coins", "clawed_back", "closed")
    list_filter = ("status", "closed")


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("user", "customer_id", "created_at")
    search_fields = ("user__username", "customer_id")


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "status", "started_at", "finished_at", "counts")
    list_filter = ("kind", "status")


class ResolveForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "object_type",
        "object_id",
        "expected",
        "found",
        "status",
        "created_at",
    )
    list_filter = ("status", "kind", "object_type")
    search_fields = ("object_id",)
    actions = ["resolve_action"]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm("wallets.view_discrepancy")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Model | None = None
    ) -> list[str] | tuple[str, ...]:
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Mark the selected discrepancies resolved (with a note)")
    def resolve_action(
        self, request: HttpRequest, queryset: QuerySet[Discrepancy]
    ) -> HttpResponse | None:
        if not request.user.has_perm("wallets.change_discrepancy") or not has_role(
            request.user, FINANCE
        ):
            self.message_user(request, "You may not resolve discrepancies.", messages.ERROR)
            return None
        form = ResolveForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for discrepancy in queryset:
                # Audited by the service, in its transaction.
                discrepancy_resolve(
                    discrepancy=discrepancy,
                    actor=signed_in_user(request),
                    note=form.cleaned_data["note"],
                    request=request,
                )
            self.message_user(request, "Resolved.", messages.SUCCESS)
            return None
        return render(
            request,
            "wallets/admin_resolve.html",
            {
                **self.admin_site.each_context(request),
                "title": "Resolve discrepancies",
                "form": form,
                "items": queryset,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )
