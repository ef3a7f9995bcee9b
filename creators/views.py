from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.api import signed_in_user
from config.errors import DomainError
from creators.services import creator_create


@login_required
@require_POST
def creator_start(request: HttpRequest) -> HttpResponse:
    """The dashboard's "become a creator" form."""
    try:
        creator = creator_create(
            user=signed_in_user(request),
            handle=request.POST.get("handle", ""),
            display_name=request.POST.get("display_name", ""),
            bio=request.POST.get("bio", ""),
        )
    except DomainError as exc:
        errors = {field: " ".join(str(m) for m in msgs) for field, msgs in exc.fields.items()}
        return render(
            request,
            "creators/become.html",
            {"error": exc.message, "errors": errors, "values": request.POST},
            status=400,
        )
    messages.success(request, f"You are a creator now: your page is /creators/{creator.handle}/")
    return redirect("/creator/")
