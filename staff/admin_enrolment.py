"""Superusers issue two-factor enrolment links from the user list (imported by staff.admin).

The user admin of ``accounts`` gets one more action; a link is shown once, on the page that
follows the action, and only its digest is stored.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse

from accounts.admin import ApplauseUserAdmin
from config.errors import DomainError
from staff import otp

User = get_user_model()


class StaffUserAdmin(ApplauseUserAdmin):
    actions = ["issue_enrolment_link"]

    def has_enrol_link_permission(self, request) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.action(description="Issue a 2FA enrolment link", permissions=["enrol_link"])
    def issue_enrolment_link(self, request, queryset):
        issued, refused = [], []
        for user in queryset.order_by("username"):
            try:
                link, secret = otp.enrolment_link_issue(
                    user=user, actor=request.user, request=request
                )
            except DomainError as exc:
                refused.append(exc.message)
                continue
            issued.append(
                {
                    "user": user,
                    "url": request.build_absolute_uri(otp.enrolment_link_path(secret)),
                    "expires_at": link.expires_at,
                }
            )
        for message in refused:
            self.message_user(request, message, messages.ERROR)
        if not issued:
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Two-factor enrolment links",
            "links": issued,
            "opts": self.model._meta,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/staff/enrol_links.html", context)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
