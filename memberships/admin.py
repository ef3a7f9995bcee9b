"""Memberships in the admin: read-only (money moves only through the services, and every
month paid is a ledger transaction); staff look, filter and follow a member's history."""

from django.contrib import admin

from memberships.models import Membership, MembershipCharge, MembershipEvent, Tier


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tier)
class TierAdmin(ReadOnly):
    list_display = ("name", "creator", "position", "coins_per_month", "price_effective_at")
    search_fields = ("name", "creator__handle")
    list_select_related = ("creator",)


class ChargeInline(admin.TabularInline):
    model = MembershipCharge
    fields = ("kind", "payer", "coins", "diamonds", "period_start", "period_end", "transaction")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Membership)
class MembershipAdmin(ReadOnly):
    list_display = (
        "id",
        "member",
        "creator",
        "tier",
        "status",
        "renews",
        "coins_per_month",
        "current_period_end",
        "months",
    )
    list_filter = ("status", "renews")
    search_fields = ("member__username", "creator__handle")
    list_select_related = ("member", "creator", "tier")
    inlines = [ChargeInline]


@admin.register(MembershipCharge)
class MembershipChargeAdmin(ReadOnly):
    list_display = ("id", "membership", "kind", "payer", "coins", "diamonds", "period_start")
    list_filter = ("kind",)
    search_fields = ("payer__username", "membership__creator__handle")
    list_select_related = ("payer", "membership")


@admin.register(MembershipEvent)
class MembershipEventAdmin(ReadOnly):
    list_display = ("created_at", "kind", "membership", "tier", "actor", "notify", "notified_at")
    list_filter = ("kind", "notify")
    search_fields = ("membership__member__username", "message")
