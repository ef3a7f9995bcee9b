from django.contrib import admin

from wallets.models import Account, Entry, LedgerTransaction
from wallets.services import account_balance


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money is shown, never edited here: changes go through services with a reason."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EntryInline(admin.TabularInline):
    model = Entry
    fields = ("id", "account", "amount", "balance_after", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "user", "unit", "live_balance", "is_frozen", "is_hot")
    list_filter = ("kind", "unit", "is_frozen", "is_hot")
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)

    @admin.display(description="balance")
    def live_balance(self, obj):
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
