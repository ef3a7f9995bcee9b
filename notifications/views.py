"""Portal pages: verify an address, unsubscribe (one click), email preferences."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notifications.services import (
    InvalidLink,
    email_is_verified,
    email_unsubscribe,
    email_verification_send,
    email_verify,
    preference_get,
    preference_set,
    unsubscribe_read,
)


def verify_page(request, token: str):
    try:
        user = email_verify(token=token)
    except InvalidLink as exc:
        return render(request, "notifications/verify.html", {"error": exc.message}, status=400)
    return render(request, "notifications/verify.html", {"verified_email": user.email})


# A mail client's one-click unsubscribe (RFC 8058) POSTs without our CSRF token; the signed
# token in the URL is the proof, and the action only turns mail off.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_page(request, token: str):
    try:
        user, _category = unsubscribe_read(token=token)
    except InvalidLink as exc:
        return render(request, "notifications/unsubscribe.html", {"error": exc.message}, status=400)
    if request.method == "POST":
        email_unsubscribe(token=token)
        if "List-Unsubscribe" in request.POST:
            return HttpResponse("Unsubscribed.", content_type="text/plain")
        return render(request, "notifications/unsubscribe.html", {"done": True, "who": user})
    return render(request, "notifications/unsubscribe.html", {"who": user})


@login_required
@require_http_methods(["GET", "POST"])
def preferences_page(request):
    saved = resent = False
    if request.method == "POST":
        if request.POST.get("action") == "resend":
            resent = email_verification_send(user=request.user) is not None
        else:
            preference_set(user=request.user, weekly_digest=bool(request.POST.get("weekly_digest")))
            saved = True
    return render(
        request,
        "notifications/preferences.html",
        {
            "preference": preference_get(user=request.user),
            "verified": email_is_verified(user=request.user),
            "saved": saved,
            "resent": resent,
        },
    )
