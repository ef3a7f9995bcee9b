"""Read-only admin screens: staff can see which mails and app webhooks went out, which are
waiting and which failed (and why). Nothing is edited here: the outbox and the deliveries are
written only by notifications.services and its tasks. The webhook secret is never shown."""

from django.contrib import admin

from notifications.models import OutboxEmail, WebhookDelivery, WebhookEndpoint
from notifications.services import SECRET_TEMPLATES


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutboxEmail)
class OutboxEmailAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "to_email", "category", "status", "attempts", "created_at")
    list_filter = ("status", "category")
    search_fields = ("event", "to_email", "user__username")
    readonly_fields = [f.name for f in OutboxEmail._meta.fields]
    ordering = ("-id",)

    def get_fields(self, request, obj=None):
        fields = [f.name for f in OutboxEmail._meta.fields if f.name != "id"]
        if obj is not None and obj.template in SECRET_TEMPLATES:
            # A reset link in staff's hands is a way into the account: never shown.
            fields = [f for f in fields if f not in ("body_text", "body_html")]
        return fields

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("id", "owner", "url", "enabled", "failing_since", "disabled_reason")
    list_filter = ("enabled",)
    search_fields = ("url", "owner__username")
    exclude = ("secret",)
    readonly_fields = [f.name for f in WebhookEndpoint._meta.fields if f.name != "secret"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "endpoint", "event", "status", "attempts", "last_status_code")
    list_filter = ("status",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    ordering = ("-id",)
