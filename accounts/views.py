import math

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods

from accounts.forms import LoginForm, SignupForm
from accounts.services import password_reset_done, password_reset_request, user_register
from config.errors import DomainError
from config.redirects import safe_next
from config.throttles import PasswordResetIPThrottle, SignupThrottle


def landing(request):
    return render(request, "accounts/landing.html")


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("/wallet/")
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        throttle = SignupThrottle()
        if not throttle.allow_request(request, None):  # type: ignore[arg-type]  # reads the address only
            # The same budget per address as the API's sign-up (a bot may use either).
            wait = math.ceil(throttle.wait() or 60)
            form.is_valid()
            form.add_error(None, "Too many sign-ups from your network. Please try again later.")
            response = render(request, "accounts/signup.html", {"form": form}, status=429)
            response["Retry-After"] = str(wait)
            return response
    if request.method == "POST" and form.is_valid():
        try:
            user = user_register(**form.cleaned_data)
        except DomainError as exc:
            for field, errors in exc.fields.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to Applause, {user.username}!")
            return redirect(safe_next(request, "/recharge/"))
    return render(request, "accounts/signup.html", {"form": form})


class PortalLoginView(LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self):
        # With no ``next``, creators land on their dashboard, viewers on their wallet.
        if getattr(self.request.user, "is_creator", False):
            return "/creator/"
        return super().get_default_redirect_url()


class PortalLogoutView(LogoutView):
    pass


# --- Passwords: Django's change and reset flows, in the portal's look --------------------------


class PortalPasswordChangeView(auth_views.PasswordChangeView):
    """Signed in: current password, new one twice. This session stays; every other session
    and every API token stops working."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form):
        response = super().form_valid(form)  # saves, keeps this session (update_session_auth_hash)
        password_reset_done(user=form.user)
        return response


class PortalPasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


class PortalPasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link. The same page follows whether or not the address has an
    account; requests are limited per client address and per email address."""

    template_name = "accounts/password_reset.html"
    success_url = reverse_lazy("password_reset_sent")

    def form_valid(self, form):
        # DRF's throttle reads only the address and the cache: a plain request will do.
        throttle = PasswordResetIPThrottle()
        if not throttle.allow_request(self.request, None):  # type: ignore[arg-type]  # as above
            form.add_error(None, "Too many reset requests from here. Try again in an hour.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        password_reset_request(
            email=form.cleaned_data["email"], site_url=self.request.build_absolute_uri("/")
        )
        return HttpResponseRedirect(self.get_success_url())


class PortalPasswordResetSentView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_sent.html"


class PortalPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        password_reset_done(user=form.user)
        return response


class PortalPasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
