"""CPU per ``POST /api/v1/gifts/send/`` in the WSGI app itself (issue #15): no test client,
no server, no network stack of our own making, so the figure is what a web worker spends.

Run through ``scripts/with_services.sh`` (it needs ``DATABASE_URL`` and ``REDIS_URL``)::

    SECRET_KEY=x scripts/with_services.sh .venv/bin/python bench/hot_wsgi.py [N] [--profile]

Creates its own ``hotwsgi_<pid>`` database, seeds 20 senders and 20 creators, then calls
``config.wsgi.application`` N times (after 100 warm-up calls) with the environ gunicorn would
build, and prints the process CPU per request, the PostgreSQL transactions per request
(``pg_stat_database.xact_commit``: one per autocommit statement, BEGIN…COMMIT counting once)
and the Redis commands per request (``INFO commandstats``), and the CPU of PostgreSQL's processes per request. ``--profile`` adds a cProfile of
the same loop (top functions by own time).
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def open_bench_database(prefix: str):
    """Create ``<prefix>_<pid>`` beside ``DATABASE_URL`` and point this process's Django at it
    (DEBUG off, the money throttle lifted, quiet logs). Returns bench/run.py as a module (its
    database helpers and seeding), the server's URL and the database's name."""
    base_url = os.environ["DATABASE_URL"]
    sys.path.append(str(REPO / "bench"))
    import run as b  # bench/run.py: its database helpers and seeding

    dbname = f"{prefix}_{os.getpid()}"
    b.admin_sql(base_url, f'CREATE DATABASE "{dbname}"')
    os.environ.update(
        DATABASE_URL=b.url_with_db(base_url, dbname),
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        APPLAUSE_TESTING="0",
        THROTTLE_MONEY=os.environ.get("THROTTLE_MONEY", "100000000/min"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
        CACHE_KEY_PREFIX=f"{prefix}{os.getpid()}",
        CELERY_BROKER_URL="memory://",
    )
    return b, base_url, dbname


def gift_environ(*, token: str, body: bytes, key: str, path: str = "/api/v1/gifts/send/") -> dict:
    """The WSGI environ gunicorn builds for one JSON POST with a token, behind a TLS proxy."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "HTTP_IDEMPOTENCY_KEY": key,
        "HTTP_X_FORWARDED_PROTO": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


MONITORED = 50


def redis_round_trips(redis, request) -> tuple[float, float]:
    """(commands the app sent, commands run inside scripts) per request, from Redis's MONITOR
    over ``MONITORED`` requests: INFO commandstats cannot tell the two apart."""
    import threading

    start, stop = (f"hot-wsgi-{what}-{uuid.uuid4().hex}" for what in ("start", "stop"))
    seen = {"app": 0, "lua": 0}
    counting = threading.Event()

    def listen() -> None:
        with redis.monitor() as monitor:
            for command in monitor.listen():
                if start in command["command"]:
                    counting.set()  # only what comes between the two markers counts
                elif stop in command["command"]:
                    return
                elif counting.is_set():
                    seen["lua" if command.get("client_type") == "lua" else "app"] += 1

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    while not counting.is_set():  # MONITOR may not be listening yet: say it again
        redis.echo(start)
        counting.wait(0.1)
    for i in range(MONITORED):
        request(i)
    redis.echo(stop)
    thread.join(10)
    return seen["app"] / MONITORED, seen["lua"] / MONITORED


def main() -> int:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "1000"))
    profile = "--profile" in sys.argv
    b, base_url, dbname = open_bench_database("hotwsgi")
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection, connections
        from django_redis import get_redis_connection
        from knox.models import AuthToken

        from config.wsgi import application

        call_command("migrate", verbosity=0)
        senders, handles = b.seed_gift_world(20, 20)
        tokens = [AuthToken.objects.create(user=u)[1] for u in senders]
        connections.close_all()

        def environ(i: int) -> dict:
            body = json.dumps({"creator": handles[i % len(handles)], "gift": b.GIFT_SLUG}).encode()
            return gift_environ(token=tokens[i % len(tokens)], body=body, key=uuid.uuid4().hex)

        statuses: dict[str, int] = {}

        def start_response(status, headers, exc_info=None):
            statuses[status] = statuses.get(status, 0) + 1

        def one(i: int) -> None:
            result = application(environ(i), start_response)
            b"".join(result)
            close = getattr(result, "close", None)
            if close:
                close()

        for i in range(100):
            one(i)
        bad = {s: c for s, c in statuses.items() if not s.startswith("201")}
        if bad:
            raise RuntimeError(f"warm-up answers: {statuses}")
        redis = get_redis_connection("default")

        def xacts() -> int:
            with connection.cursor() as cursor:  # the main thread's connection: the app's
                cursor.execute(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                    "WHERE datname = current_database()"
                )
                return cursor.fetchone()[0]

        def redis_by_command() -> dict[str, int]:
            stats = redis.info("commandstats")
            return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}

        def redis_calls() -> int:
            return sum(v for k, v in redis_by_command().items() if k != "info")

        by_command0 = redis_by_command()

        connection.cursor().execute("SELECT pg_stat_clear_snapshot()")
        x0, r0 = xacts(), redis_calls()
        time.sleep(0.6)  # pg_stat_database is flushed at most every 0.5 s by idle backends
        x0 = xacts()
        pg0 = b.pg_cpu_s()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(n):
            one(i)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        pg = b.pg_cpu_s() - pg0
        r1 = redis_calls()
        by_command = {
            k: (v - by_command0.get(k, 0)) / n
            for k, v in redis_by_command().items()
            if k != "info" and v != by_command0.get(k, 0)
        }
        trips, from_scripts = redis_round_trips(redis, lambda i: one(n + i))
        time.sleep(0.6)
        connection.cursor().execute("SELECT pg_stat_clear_snapshot()")
        x1 = xacts()
        print(
            f"{n} requests: CPU {cpu / n * 1000:.3f} ms/request, wall {wall / n * 1000:.3f} "
            f"ms/request; PostgreSQL CPU {pg / n * 1000:.3f} ms/request (all its processes); "
            f"PostgreSQL transactions/request {(x1 - x0 - 2) / n:.2f}; "
            f"Redis commands/request {(r1 - r0 - 1) / n:.2f} "
            f"({', '.join(f'{k} {v:.2f}' for k, v in sorted(by_command.items()))}: INFO "
            f"commandstats counts the commands a script runs too), of which sent by the app "
            f"(round trips) {trips:.2f} and run inside a script {from_scripts:.2f} per request "
            f"(MONITOR over {MONITORED} more requests); answers {statuses}"
        )
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile(time.process_time)  # CPU, not waiting
            prof.enable()
            for i in range(n):
                one(i)
            prof.disable()
            out = io.StringIO()
            stats = pstats.Stats(prof, stream=out).sort_stats("tottime")
            stats.print_stats(40)
            out.write("\n--- cumulative ---\n")
            stats.sort_stats("cumulative").print_stats(60)
            print(out.getvalue())
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        b.admin_sql(base_url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
