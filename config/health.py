"""Liveness and readiness probes for load balancers and orchestrators."""

import logging
import threading
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)


def healthz(request):
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    try:
        _select_one()
    except (InterfaceError, OperationalError):
        # A connection PostgreSQL dropped (a restart) says nothing about the database now:
        # drop it and ask once more on a new one (connect_timeout bounds the wait).
        connection.close()
        _select_one()


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _check_cache() -> None:
    from django.core.cache import cache

    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client"):
        # django-redis swallows connection errors (the cache fails open): ask Redis itself.
        client.get_client(write=True).ping()
        return
    cache.set("readyz", "1", 5)


def _check_stripe() -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(settings.STRIPE_API_BASE, timeout=3)  # noqa: S310
    except urllib.error.HTTPError:
        return  # any HTTP answer means it is reachable


_CHECKS = {
    "database": _check_database,
    "broker": _check_broker,
    "cache": _check_cache,
    "stripe": _check_stripe,
}
# Checked on every probe: a local round trip, and a database outage must take the process out
# of rotation at once (its requests would only get 503 database_unavailable).
_LIVE = {"database"}
_cached: dict = {"at": None, "results": None}
_cached_lock = threading.Lock()


def _run_checks(names) -> dict[str, bool]:
    results = {}
    for name in names:
        check = _CHECKS[name]
        try:
            check()
        except Exception as exc:  # a probe reports, it never raises
            logger.warning("readyz: %s is down (%s: %s)", name, type(exc).__name__, exc)
            results[name] = False
        else:
            results[name] = True
    return results


def checks_cached() -> dict[str, bool]:
    """Each dependency up or down: the database on every probe, the others at most once per
    ``READYZ_CACHE_SECONDS`` in this process (probes come often and from several balancers;
    Stripe should not see them)."""
    with _cached_lock:
        at = _cached["at"]
        if at is None or time.monotonic() - at >= settings.READYZ_CACHE_SECONDS:
            _cached["results"] = _run_checks([n for n in _CHECKS if n not in _LIVE])
            _cached["at"] = time.monotonic()
        cached = dict(_cached["results"])
    live = _run_checks([n for n in _CHECKS if n in _LIVE])
    return {name: live[name] if name in live else cached[name] for name in _CHECKS}


def checks_forget() -> None:
    """Drop the cached result (tests)."""
    with _cached_lock:
        _cached["at"] = None
        _cached["results"] = None


def readyz(request):
    """Database, broker, cache and Stripe reachable: 200, else 503 naming what is down.

    The answer says only which dependency is down; why is in the log (``readyz: ...``).
    """
    results = checks_cached()
    ready = all(results.values())
    body = {
        "ready": ready,
        "checks": {name: {"ok": ok} for name, ok in results.items()},
        "down": [name for name, ok in results.items() if not ok],
    }
    return JsonResponse(body, status=200 if ready else 503)
