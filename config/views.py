"""Error pages: JSON in the documented format under /api/, HTML elsewhere."""

import sys

from django.http import JsonResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt

from config.api import api_not_found, api_server_error, database_error_response, error_body


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return api_not_found(request, exception)
    return render(request, "404.html", status=404)


def server_error(request):
    # Django calls this inside its ``except`` block: the exception is at hand.
    response = database_error_response(request, sys.exc_info()[1] or Exception())
    if response is not None:
        return response
    if request.path.startswith("/api/"):
        return api_server_error(request)
    return render(request, "500.html", status=500)


@csrf_exempt  # nothing to protect, and a POST must get the 404, not a CSRF 403
def api_unknown_path(request, rest=""):
    """Every unmatched ``/api/...`` path, in every mode: the documented JSON 404 (under
    ``DEBUG`` Django would otherwise answer with its HTML debug page), with a hint when only
    the trailing slash is missing (APPEND_SLASH cannot redirect a POST)."""
    message = "Not found."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_unknown_path:
            message = f"Not found. Did you mean {request.path}/ (with a trailing slash)?"
    return JsonResponse(error_body("not_found", message), status=404)
