"""Where to send someone after a form: a ``next`` parameter only when it stays on this site."""

from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request, default: str) -> str:
    """``next`` from the POST body or the query string when it is a URL on this host (over
    HTTPS when the request is), else ``default``: never an open redirect to another site."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default
