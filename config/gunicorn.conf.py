"""Production web server settings (``make serve``, the benchmarks and the chaos run).

Threaded sync workers on the WSGI app. Measured on 2 cores (BENCHMARKS.md): the same app under
uvicorn workers served half the requests at twice the CPU per request, because Django runs
every sync view of an ASGI worker on one thread, and it leaked database connections
(``CONN_MAX_AGE`` is per thread) until PostgreSQL refused new ones. Each thread here keeps one
persistent connection: workers × threads connections per host.
"""

import multiprocessing
import os

# All interfaces by default: the production server runs behind a proxy or in a container.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
wsgi_app = "config.wsgi:application"
worker_class = os.environ.get("WEB_CLASS") or "gthread"
workers = int(os.environ.get("WEB_WORKERS") or multiprocessing.cpu_count() + 1)
threads = int(os.environ.get("WEB_THREADS") or 4)
timeout = int(os.environ.get("WEB_TIMEOUT") or 60)
graceful_timeout = 10
keepalive = 5
# Recycle workers now and then so a slow leak can never take a host down.
max_requests = 20_000
max_requests_jitter = 2_000
accesslog = None  # config.middleware logs one structured line per request
errorlog = "-"
