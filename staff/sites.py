"""The admin site behind 2FA, with the dashboard on its index page."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, auth
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login

from staff import otp

_protect = [sensitive_post_parameters(), csrf_protect, never_cache]


class StaffAdminSite(admin.AdminSite):
    """Staff pages need an active staff user *and* a verified OTP device in this session."""

    site_header = "Applause staff console"
    site_title = "Applause staff"
    index_title = "Dashboard"
    index_template = "admin/index.html"

    def has_permission(self, request):
        user = request.user
        is_verified = getattr(user, "is_verified", None)
        return bool(user.is_active and user.is_staff and callable(is_verified) and is_verified())

    def get_urls(self):
        return [
            path("otp/", self.otp_verify_view, name="otp_verify"),
            path("otp/enrol/", self.otp_enrol_view, name="otp_enrol"),
            *super().get_urls(),
        ]

    # --- Sign-in -------------------------------------------------------------------------

    def _next_url(self, request) -> str:
        candidate = request.POST.get("next") or request.GET.get("next") or ""
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
        return reverse("admin:index", current_app=self.name)

    def _redirect_keeping_next(self, request, url_name: str) -> HttpResponseRedirect:
        url = reverse(url_name, current_app=self.name)
        nxt = request.POST.get("next") or request.GET.get("next")
        if nxt:
            url += "?" + urlencode({"next": nxt})
        return HttpResponseRedirect(url)

    def _second_step(self, request, user) -> HttpResponseRedirect:
        name = "admin:otp_verify" if otp.has_confirmed_device(user) else "admin:otp_enrol"
        return self._redirect_keeping_next(request, name)

    def _complete_login(self, request, user, device, *, enrolled: bool) -> HttpResponseRedirect:
        from staff.services import audit_record

        nxt = self._next_url(request)
        otp.pending_clear(request)
        auth.login(request, user, backend=user.backend)
        otp_login(request, device)
        if enrolled:
            audit_record(actor=user, action="otp_enrol", obj=device, request=request)
        audit_record(actor=user, action="admin_login", obj=user, request=request)
        return HttpResponseRedirect(nxt)

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
        if request.method == "POST" and form.is_valid():
            staff_user = form.get_user()
            otp.pending_set(request, staff_user)
            return self._second_step(request, staff_user)
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
        from staff.services import audit_record

        user = otp.pending_user(request)
        if user is None:
            return self._redirect_keeping_next(request, "admin:login")
        if not otp.has_confirmed_device(user):
            return self._redirect_keeping_next(request, "admin:otp_enrol")
        error = ""
        if request.method == "POST":
            device = otp.token_verify(user, request.POST.get("otp_token", ""))
            if device is not None:
                return self._complete_login(request, user, device, enrolled=False)
            audit_record(actor=user, action="admin_login_failed", obj=user, request=request)
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
    def otp_enrol_view(self, request):
        """Step 2 for a staff member without a device: scan a QR code, confirm one code."""
        user = otp.pending_user(request)
        if user is None:
            return self._redirect_keeping_next(request, "admin:login")
        if otp.has_confirmed_device(user):
            # Enrolment is only for the first device; a second one needs the first.
            return self._redirect_keeping_next(request, "admin:otp_verify")
        device = otp.enrolment_device(user)
        error = ""
        if request.method == "POST":
            token = "".join((request.POST.get("otp_token") or "").split())
            if token and device.verify_token(token):
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                return self._complete_login(request, user, device, enrolled=True)
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
            "links": {
                "payouts": self._changelist_url("payouts", "payout"),
                "discrepancies": self._changelist_url("wallets", "discrepancy"),
            },
        }
        return super().index(request, extra_context)
