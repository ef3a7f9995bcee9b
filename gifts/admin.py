from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html

from gifts.models import Gift, GiftEvent, Goal


@admin.register(Gift)
class GiftAdmin(admin.ModelAdmin):
    list_display = (
        "preview",
        "name",
        "slug",
        "coins",
        "category",
        "sort_order",
        "is_active",
        "available_from",
        "available_until",
    )
    list_display_links = ("preview", "name")
    list_editable = ("sort_order", "is_active")
    list_filter = ("is_active", "category")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("preview_large", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "slug", "coins", "category", "sort_order", "is_active")}),
        ("Art", {"fields": ("image", "preview_large")}),
        ("Availability", {"fields": ("available_from", "available_until", "countries")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="art")
    def preview(self, obj: Gift) -> str:
        return format_html('<img src="{}" alt="" width="32" height="32">', obj.image_url)

    @admin.display(description="preview")
    def preview_large(self, obj: Gift) -> str:
        if not obj.pk:
            return "-"
        return format_html(
            '<img src="{}" alt="{}" width="96" height="96">', obj.image_url, obj.name
        )

    def has_delete_permission(self, request: HttpRequest, obj: Gift | None = None) -> bool:
        # Django's permission first; and sent gifts point at their gift: switch it off instead.
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or not obj.events.exists()


@admin.register(GiftEvent)
class GiftEventAdmin(admin.ModelAdmin):
    """Gift events are money history: shown, never edited."""

    list_display = (
        "id",
        "created_at",
        "sender",
        "creator",
        "gift",
        "quantity",
        "coins",
        "diamonds",
    )
    list_select_related = ("sender", "creator", "gift")
    search_fields = ("sender__username", "creator__handle", "live_id", "video_id")
    list_filter = ("gift",)
    date_hierarchy = "created_at"
    raw_id_fields = ("sender", "creator", "gift", "transaction")

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Goal)
class GoalAdmin(admin.ModelAdmin):
    """Creators' goals: shown, never edited here (all-or-nothing ones hold viewers' coins until
    ``goal_settle`` closes them at the deadline)."""

    list_display = (
        "id",
        "creator",
        "title",
        "target_coins",
        "deadline",
        "all_or_nothing",
        "status",
        "raised_at_close",
        "settled_at",
    )
    list_select_related = ("creator",)
    list_filter = ("status", "all_or_nothing")
    search_fields = ("creator__handle", "title", "live_id")
    date_hierarchy = "deadline"
    raw_id_fields = ("creator", "settlement")

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
