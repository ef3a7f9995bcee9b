"""``make serve``: the production web server for the WSGI app (``config.wsgi``), ``DEBUG`` off.

``WEB_SERVER`` picks it:

- ``gunicorn`` (the default): threaded workers as ``config/gunicorn.conf.py`` sets them
  (cores + 1 workers × ``WEB_THREADS`` 4 threads).
- ``granian``: the same WSGI app under granian (HTTP in Rust, the app on a pool of blocking
  threads per worker): cores + 1 workers × ``WEB_THREADS`` 8 threads. Measured on the 2-core
  machine (BENCHMARKS.md, "Web servers"): less CPU per request and no accept-loop starvation
  when the cores are busy, which is where gunicorn's gthread worker falls behind.

Both bind ``HOST``:``PORT`` (default 0.0.0.0:8000) and read ``WEB_WORKERS`` / ``WEB_THREADS``.
Extra arguments go to the server as they are. The script replaces itself with the server, so
signals (Ctrl-C, SIGTERM from a supervisor) reach it directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVERS = ("gunicorn", "granian")


def _positive(env: Mapping[str, str], name: str, default: int) -> str:
    raw = env.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"{name} must be a whole number ≥ 1, not {raw!r}")
    return raw


def command(env: Mapping[str, str], extra: list[str] | None = None) -> list[str]:
    """The server's argv for this environment (``WEB_SERVER``, ``WEB_WORKERS``, ...)."""
    server = env.get("WEB_SERVER") or "gunicorn"
    if server not in SERVERS:
        sys.exit(f"WEB_SERVER must be one of {', '.join(SERVERS)}, not {server!r}")
    bindir = Path(sys.executable).parent
    if server == "gunicorn":
        return [str(bindir / "gunicorn"), "-c", "config/gunicorn.conf.py", *(extra or [])]
    workers = _positive(env, "WEB_WORKERS", (os.cpu_count() or 1) + 1)
    threads = _positive(env, "WEB_THREADS", 8)
    port = _positive(env, "PORT", 8000)
    return [
        str(bindir / "granian"),
        "--interface", "wsgi",
        "--host", env.get("HOST") or "0.0.0.0",  # noqa: S104 (behind a proxy or in a container)
        "--port", port,
        "--workers", workers,
        "--blocking-threads", threads,
        # config.middleware logs one structured line per request.
        "--no-access-log",
        # A worker that dies is replaced, as gunicorn's arbiter does.
        "--respawn-failed-workers",
        "--workers-kill-timeout", "10",
        *(extra or []),
        "config.wsgi:application",
    ]  # fmt: skip


def refuse_unsafe_production() -> None:
    """The check ``config.wsgi`` runs in every worker, run once before the server starts: a
    refused setting stops ``make serve`` at once with the reason, instead of a server that
    keeps respawning workers which fail to boot (granian retries for ~30 s)."""
    from django.core.exceptions import ImproperlyConfigured

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    try:
        django.setup()
        from wallets.checks import refuse_unsafe_production as check

        check()
    except ImproperlyConfigured as refused:
        sys.exit(str(refused))


def main() -> None:
    argv = command(os.environ, extra=sys.argv[1:])
    os.chdir(REPO)
    refuse_unsafe_production()
    os.execv(argv[0], argv)  # noqa: S606 (our own argv, no shell)


if __name__ == "__main__":
    main()
