import math

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView, LogoutView
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.forms import LoginForm, SignupForm
from accounts.services import user_register
from config.errors import DomainError
from config.redirects import safe_next
from config.throttles import SignupThrottle


def landing(request):
    return render(request, "accounts/landing.html")


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("/wallet/")
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        throttle = SignupThrottle()
        if not throttle.allow_request(request, None):
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
