from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from accounts.audit import OwnAccountRefused, refuse_own_account
from accounts.roles import FINANCE, require_role
from config.api import signed_in_user
from creators.models import Creator
from creators.selectors import creator_earnings
from creators.services import earnings_release_by_staff


@admin.register(Creator)
class CreatorAdmin(admin.ModelAdmin):
    list_display = ("handle", "display_name", "user", "is_active", "released_until", "created_at")
    list_filter = ("is_active",)
    search_fields = ("handle", "display_name", "user__username", "user__email")
    list_select_related = ("user",)
    readonly_fields = (
        "user",
        "handle",
        "pending_account",
        "released_until",
        "created_at",
        "earnings",
    )
    fields = ("user", "handle", "display_name", "bio", "is_active", *readonly_fields[2:])
    actions = ["release_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # People become creators themselves (portal or API), which also opens their accounts.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Creator | None = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST":
            creator = self.get_object(request, unquote(object_id))
            if creator is not None:
                try:
                    # Before Django's transaction: the refusal's audit row must survive.
                    refuse_own_account(
                        actor=request.user,
                        owner=creator.user,
                        action="creator_change",
                        obj=creator,
                        request=request,
                    )
                except OwnAccountRefused as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                    return HttpResponseRedirect(request.path)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="earnings (diamonds)")
    def earnings(self, obj: Creator) -> str:
        e = creator_earnings(creator=obj)
        return (
            f"pending {e.diamonds_pending:,} · available {e.diamonds_available:,} "
            f"({e.available_value}) · in payout {e.diamonds_in_payout:,} · paid {e.diamonds_paid:,}"
        )

    @admin.action(description="Release matured earnings now")
    def release_now(self, request: HttpRequest, queryset: QuerySet[Creator]) -> None:
        require_role(request.user, FINANCE)
        actor = signed_in_user(request)  # signed in: the role check passed
        total = 0
        for creator in queryset.select_related("user"):
            try:
                # Checks the role and the staff member's own profile, and audits.
                result = earnings_release_by_staff(creator=creator, actor=actor, request=request)
            except OwnAccountRefused as exc:
                self.message_user(request, f"@{creator.handle}: {exc.message}", messages.ERROR)
                continue
            total += result.diamonds
        self.message_user(request, f"Released {total:,} diamonds.", messages.SUCCESS)
