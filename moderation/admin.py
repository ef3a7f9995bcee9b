"""The moderation queue in the staff console: reported gift messages, for the support role.

Each action calls ``moderation.services.reports_resolve`` (which audits it) after checking
the role in the action itself, so a crafted POST cannot do what the menu hides.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q

from accounts.roles import SUPPORT, require_role
from config.errors import DomainError
from moderation.models import MessageReport, ReportStatus
from moderation.services import reports_resolve


def _support_only(model_admin, request) -> bool:
    try:
        require_role(request.user, SUPPORT)
    except PermissionDenied as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return False
    return True


class OpenFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("open", "Open (the queue)"),
            *[(v, label) for v, label in ReportStatus.choices if v != "open"],
            ("all", "All"),
        ]

    def queryset(self, request, queryset):
        value = self.value() or "open"
        if value == "all":
            return queryset
        return queryset.filter(status=value)

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


@admin.register(MessageReport)
class MessageReportAdmin(admin.ModelAdmin):
    """Open reports, the most reported messages first. Hiding a message removes it from the
    live feed, the overlay and the pinned strip; its gift stays (and still counts)."""

    list_display = (
        "created_at",
        "message_text",
        "sender",
        "creator",
        "reports_on_message",
        "reason",
        "note",
        "reporter",
        "status",
    )
    list_filter = (OpenFilter, "reason")
    search_fields = ("gift_event__message", "gift_event__sender__username", "reporter__username")
    list_select_related = ("gift_event__sender", "gift_event__creator", "reporter")
    actions = ["hide_messages", "dismiss_reports"]
    readonly_fields = [
        "gift_event",
        "reporter",
        "reason",
        "note",
        "status",
        "created_at",
        "resolved_at",
        "resolved_by",
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                open_reports=Count(
                    "gift_event__reports", filter=Q(gift_event__reports__status="open")
                )
            )
            .order_by("-open_reports", "created_at")
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Message")
    def message_text(self, obj):
        return obj.gift_event.message

    @admin.display(description="Sender")
    def sender(self, obj):
        return obj.gift_event.sender.username

    @admin.display(description="Creator")
    def creator(self, obj):
        return f"@{obj.gift_event.creator.handle}"

    @admin.display(description="Open reports", ordering="open_reports")
    def reports_on_message(self, obj):
        return obj.open_reports

    def _resolve(self, request, queryset, *, hide: bool) -> None:
        if not _support_only(self, request):
            return
        closed = 0
        for event_id in sorted(set(queryset.values_list("gift_event_id", flat=True))):
            try:
                closed += reports_resolve(
                    actor=request.user,
                    event_id=event_id,
                    hide=hide,
                    reason="moderation queue",
                    request=request,
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        verb = "hidden" if hide else "dismissed"
        self.message_user(request, f"{closed} report(s) closed, messages {verb}.", messages.SUCCESS)

    @admin.action(description="Hide the reported messages", permissions=["change"])
    def hide_messages(self, request, queryset):
        self._resolve(request, queryset, hide=True)

    @admin.action(description="Dismiss the reports (keep the messages)", permissions=["change"])
    def dismiss_reports(self, request, queryset):
        self._resolve(request, queryset, hide=False)
