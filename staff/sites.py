"""The admin site behind 2FA, with the dashboard on its index page."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, auth
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login

from accounts import lockout
from config.redirects import safe_next
from staff import otp

if TYPE_CHECKING:
    from accounts.models import User

_protect = [sensitive_post_parameters(), csrf_protect, never_cache]


# What staff call each part of the console, in the order they use them most (money first;
# the plumbing of 2FA and scheduling last). Apps not named keep Django's name, at the end.
APP_NAMES = {
    "wallets": "Wallets, payments and the ledger",
    "payouts": "Payouts",
    "creators": "Creators",
    "gifts": "Gifts",
    "memberships": "Memberships",
    "notifications": "Emails and app webhooks",
    "accounts": "People",
    "staff": "Staff console and audit log",
    "auth": "Staff roles",
    "django_celery_beat": "Scheduled jobs",
    "otp_totp": "Two-factor: authenticator apps",
    "otp_static": "Two-factor: backup codes",
}
APP_ORDER = list(APP_NAMES)


class StaffAdminSite(admin.AdminSite):
    """Staff pages need an active staff user *and* a verified OTP device in this session."""

    site_header = "Applause staff console"
    site_title = "Applause staff"
    index_title = "Dashboard"
    index_template = "admin/index.html"

    def has_permission(self, request):
        user = request.user
        is_verified = getattr(user, "is_verified", None)
        if not (user.is_active and user.is_staff and callable(is_verified) and is_verified()):
            return False
        if not otp.admin_session_fresh(request):
            # Past ADMIN_SESSION_MAX_HOURS or idle for ADMIN_SESSION_IDLE_MINUTES: sign in
            # again, password and code.
            auth.logout(request)
            return False
        return True

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        for app in apps:
            app["name"] = APP_NAMES.get(app["app_label"], app["name"])
        rank = {label: i for i, label in enumerate(APP_ORDER)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(rank)), app["name"]))

    def get_urls(self):
        return [
            path("otp/", self.otp_verify_view, name="otp_verify"),
            path("otp/enrol/", self.otp_enrol_view, name="otp_enrol"),
            path("otp/enrol/<str:secret>/", self.otp_enrol_link_view, name="otp_enrol_link"),
            *super().get_urls(),
        ]

    # --- Sign-in -------------------------------------------------------------------------

    def _next_url(self, request) -> str:
        return safe_next(request, reverse("admin:index", current_app=self.name))

    def _redirect_keeping_next(self, request, url_name: str) -> HttpResponseRedirect:
        url = reverse(url_name, current_app=self.name)
        nxt = request.POST.get("next") or request.GET.get("next")
        if nxt:
            url += "?" + urlencode({"next": nxt})
        return HttpResponseRedirect(url)

    def _second_step(self, request, user: User) -> HttpResponseRedirect:
        name = "admin:otp_verify" if otp.has_confirmed_device(user) else "admin:otp_enrol"
        return self._redirect_keeping_next(request, name)

    def _complete_login(
        self, request, user: User, device, *, enrolled: bool
    ) -> HttpResponseRedirect:
        from accounts.audit import audit_record
        from staff.services import admin_sign_in_notify

        nxt = self._next_url(request)
        otp.pending_clear(request)
        request.session.pop(otp.ENROL_LINK_SESSION, None)
        # Its user_logged_in signal clears the lockout's failure count, as a password login does.
        auth.login(request, user, backend=user.backend)
        otp_login(request, device)
        otp.admin_session_start(request)
        if enrolled:
            audit_record(actor=user, action="otp_enrol", obj=device, request=request)
        audit_record(actor=user, action="admin_login", obj=user, request=request)
        admin_sign_in_notify(user=user, request=request)
        return HttpResponseRedirect(nxt)

    def _code_failed(self, request, user: User) -> bool:
        """Count a wrong code against the login lockout, like a wrong password.

        True when this failure locked the account (and that is audited). django-otp's own
        per-device delay still applies on top.
        """
        from accounts.audit import audit_record

        audit_record(actor=user, action="admin_login_failed", obj=user, request=request)
        username = user.get_username()
        lockout.record_failure(username, request)
        if not lockout.is_locked(username, request):
            return False
        self._audit_lock(request, user, "Too many wrong one-time codes")
        return True

    def _audit_password_lock(self, request, username: str) -> None:
        """Wrong passwords locked a staff account: audit it (the page itself says nothing
        more than "wrong credentials", so the lock cannot be used to find accounts)."""
        if not lockout.is_locked(username, request):
            return
        UserModel = auth.get_user_model()
        staff_user = (
            UserModel._default_manager.filter(
                **{f"{UserModel.USERNAME_FIELD}__iexact": str(username).strip()}, is_staff=True
            )
            .order_by("pk")
            .first()
        )
        if staff_user is not None:
            self._audit_lock(request, staff_user, "Too many wrong passwords")

    @staticmethod
    def _audit_lock(request, user: User, reason: str) -> None:
        """One audit line per lock of a staff account, however it was reached."""
        from accounts.audit import audit_record

        if lockout.locked_just_now(user.get_username(), request):
            audit_record(
                actor=user, action="admin_login_locked", obj=user, reason=reason, request=request
            )

    def _locked_out(self, request, user: User) -> TemplateResponse:
        """End the half-login: the user starts again at the password step, which the same
        lockout refuses until it runs out."""
        otp.pending_clear(request)
        context = {
            **self.each_context(request),
            "title": "Sign-in locked",
            "staff_user": user,
            "lock_minutes": math.ceil(settings.LOGIN_LOCKOUT_SECONDS / 60),
            "login_url": reverse("admin:login", current_app=self.name),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/staff/otp_locked.html", context, status=429)

    @method_decorator(_protect)
    def login(self, request, extra_context=None):
        """Step 1: the password. Success leads to step 2 (code, or enrolment), not to a login."""
        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(self._next_url(request))
        user = request.user
        if request.method == "GET" and user.is_authenticated and user.is_active and user.is_staff:
            # Signed in on the portal with a password: the code is still needed here.
            user.backend = request.session.get(auth.BACKEND_SESSION_KEY)
            otp.pending_set(request, user)
            return self._second_step(request, user)
        form = AdminAuthenticationForm(request, data=request.POST or None)
        if request.method == "POST":
            if form.is_valid():
                staff_user = form.get_user()
                otp.pending_set(request, staff_user)
                return self._second_step(request, staff_user)
            self._audit_password_lock(request, request.POST.get("username", ""))
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": user.get_username() if user.is_authenticated else "",
            "form": form,
            "next": request.GET.get("next", request.POST.get("next", "")),
            "REDIRECT_FIELD_NAME": "next",
            **(extra_context or {}),
        }
        request.current_app = self.name
        return TemplateResponse(request, self.login_template or "admin/login.html", context)

    @method_decorator(_protect)
    def otp_verify_view(self, request):
        """Step 2: a code from the staff member's authenticator (or a backup code)."""
        user = otp.pending_user(request)
        if user is None:
            return self._redirect_keeping_next(request, "admin:login")
        if lockout.is_locked(user.get_username(), request):
            return self._locked_out(request, user)
        if not otp.has_confirmed_device(user):
            return self._redirect_keeping_next(request, "admin:otp_enrol")
        error = ""
        if request.method == "POST":
            device = otp.token_verify(user, request.POST.get("otp_token", ""))
            if device is not None:
                return self._complete_login(request, user, device, enrolled=False)
            if self._code_failed(request, user):
                return self._locked_out(request, user)
            error = "That code is not right (or was used already). Try the current one."
        context = {
            **self.each_context(request),
            "title": "Two-factor check",
            "staff_user": user,
            "error": error,
            "next": request.GET.get("next", request.POST.get("next", "")),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/staff/otp_verify.html", context)

    @method_decorator(_protect)
    def otp_enrol_link_view(self, request, secret: str):
        """The one-time link a superuser issued: remember it in this browser, then the usual
        password step. Opening it enrols nothing (mail scanners open links too)."""
        link = otp.enrolment_link_find(secret)
        if link is None:
            context = {**self.each_context(request), "title": "Enrolment link not valid"}
            request.current_app = self.name
            return TemplateResponse(
                request, "admin/staff/otp_enrol_link_invalid.html", context, status=404
            )
        request.session[otp.ENROL_LINK_SESSION] = link.pk
        pending = otp.pending_user(request)
        if pending is not None and pending.pk == link.user_id:
            return HttpResponseRedirect(reverse("admin:otp_enrol", current_app=self.name))
        return HttpResponseRedirect(reverse("admin:login", current_app=self.name))

    @method_decorator(_protect)
    def otp_enrol_view(self, request):
        """Step 2 for a staff member without a device, who opened an enrolment link: scan a
        QR code, confirm one code. Without a link: how to get one, and nothing else."""
        user = otp.pending_user(request)
        if user is None:
            return self._redirect_keeping_next(request, "admin:login")
        if lockout.is_locked(user.get_username(), request):
            return self._locked_out(request, user)
        if otp.has_confirmed_device(user):
            # Enrolment is only for the first device; a second one needs the first.
            return self._redirect_keeping_next(request, "admin:otp_verify")
        link = otp.enrolment_link_for_session(request, user)
        if link is None:
            context = {**self.each_context(request), "title": "Two-factor set-up needs a link"}
            context["staff_user"] = user
            request.current_app = self.name
            return TemplateResponse(
                request, "admin/staff/otp_enrol_needs_link.html", context, status=403
            )
        device = otp.enrolment_device(user)
        error = ""
        if request.method == "POST":
            token = "".join((request.POST.get("otp_token") or "").split())
            if token and device.verify_token(token):
                if otp.enrolment_confirm(link=link, device=device):
                    return self._complete_login(request, user, device, enrolled=True)
                return self._redirect_keeping_next(request, "admin:otp_enrol")
            if self._code_failed(request, user):
                return self._locked_out(request, user)
            error = "That code is not right. Check the time on your phone and try the current one."
        context = {
            **self.each_context(request),
            "title": "Set up two-factor sign-in",
            "staff_user": user,
            "error": error,
            "qr_svg": otp.qr_svg(device.config_url),
            "secret": otp.device_secret_base32(device),
            "next": request.GET.get("next", request.POST.get("next", "")),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/staff/otp_enrol.html", context)

    def password_change(self, request, extra_context=None):
        """Django's admin password change; a new password also revokes every API token (this
        session stays, other sessions end by themselves)."""
        from accounts.services import tokens_revoke_all

        response = super().password_change(request, extra_context)
        if request.method == "POST" and response.status_code == 302:
            tokens_revoke_all(user=request.user)
        return response

    # --- Dashboard -----------------------------------------------------------------------

    def _changelist_url(self, app_label: str, model_name: str) -> str:
        try:
            return reverse(f"admin:{app_label}_{model_name}_changelist", current_app=self.name)
        except NoReverseMatch:
            return ""

    def index(self, request, extra_context=None):
        from staff import selectors

        extra_context = {
            **(extra_context or {}),
            "dashboard": selectors.dashboard_cached(),
            # Not cached: staff must see a failed run at once.
            "reconciliation_failures": selectors.reconciliation_failures(),
            "links": {
                "payouts": self._changelist_url("payouts", "payout"),
                "discrepancies": self._changelist_url("wallets", "discrepancy"),
            },
        }
        return super().index(request, extra_context)
