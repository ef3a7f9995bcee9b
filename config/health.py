"""Liveness and readiness probes for load balancers and orchestrators."""

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
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


def readyz(request):
    """Database, broker, cache and Stripe reachable: 200, else 503 naming what failed."""
    checks = {
        "database": _check_database,
        "broker": _check_broker,
        "cache": _check_cache,
        "stripe": _check_stripe,
    }
    results = {}
    for name, check in checks.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # a probe reports, it never raises
            results[name] = {"ok": False, "error": type(exc).__name__}
        else:
            results[name] = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    ready = all(r["ok"] for r in results.values())
    return JsonResponse({"ready": ready, "checks": results}, status=200 if ready else 503)
