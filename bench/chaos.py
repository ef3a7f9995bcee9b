#!/usr/bin/env python
"""``make chaos``: the fault-injection suite of issue 10 (a Jepsen-style bank test).

Run through ``scripts/with_services.sh`` (it exports DATABASE_URL, REDIS_URL, STRIPE_* and
APPLAUSE_SERVICES_DIR). It creates its own ``chaos_<pid>`` database, migrates it, runs

- the production web server (gunicorn, config/gunicorn.conf.py, DEBUG off) on a free port,
- a real Celery worker on Redis,
- localstripe with a webhook registered to the server, and a Stripe Connect fake,

then, phase 1, the **bank test**: many asyncio clients recharge (``pm_card_visa``, confirmed
by the server), send gifts to a few creators and now and then refund a purchase, the creators
cash out (instant payouts) and payout batches run, while web workers, the whole web server
and the Celery worker are SIGKILLed and restarted at random, a durable PostgreSQL crashes
(``pg_ctl stop -m immediate``, SIGKILL of the postmaster) and recovers, and is once restarted
cleanly (``pg_ctl restart -m fast``), and Redis is stopped and started again; some clients
give up mid-request and retry with the same Idempotency-Key. Every acknowledged answer is
kept and found in the ledger afterwards (issue 23).
Phase 2, **webhooks**: recharges confirmed at Stripe by "the browser", their events delivered
0–3 times each, shuffled and concurrent, some never; then ``reconcile``.
Finally reconcile, release earnings (zero hold), pay everything out and check that every coin
and diamond is accounted for. Prints a summary; the last line is ``CHAOS key=value ...``;
exit status 0 only with 0 discrepancies.

``CHAOS_QUICK=1``: a 2–4 minute version (a few hundred operations, still killing web and
worker, one database crash). ``CHAOS_PRIVATE_SERVICES=1``: start a private (durable)
PostgreSQL and Redis to crash and stop, so the run disturbs nothing else on the shared
services (the smoke test inside ``make test``). ``CHAOS_PG_CRASHES``: how many crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.pgbouncer import PgBouncer, install_pgbouncer, pgbouncer_binary  # noqa: E402

BIN = REPO / ".venv" / "bin"
if not BIN.is_dir():
    BIN = Path(sys.executable).parent
PYTHON = sys.executable
PG_BIN = Path("/usr/lib/postgresql/15/bin")

QUICK = os.environ.get("CHAOS_QUICK", "") not in ("", "0")
PRIVATE = os.environ.get("CHAOS_PRIVATE_SERVICES", "") not in ("", "0")
SEED = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))
rng = random.Random(SEED)

if QUICK:
    CFG = dict(
        clients=10,
        creators=3,
        bank_seconds=60,  # a database crash takes ~10 s of it (down, then crash recovery)
        web_workers=2,
        fault_every=(4.0, 7.0),
        webhook_recharges=30,
        pg_restarts=0,  # the crash below instead (issue 23)
        redis_outages=1,
    )
else:
    CFG = dict(
        clients=64,
        creators=6,
        bank_seconds=int(os.environ.get("CHAOS_SECONDS", "750")),
        web_workers=3,
        fault_every=(6.0, 14.0),
        webhook_recharges=300,
        pg_restarts=1,  # one clean restart, for comparison with the crashes (issue 23)
        redis_outages=3,
    )

# The money paths Stripe away is judged on: recharges and self refunds.
REFUND_OR_RECHARGE = re.compile(r"^/api/v1/recharges/(?:[0-9]+/refund/)?$")

# Database crashes (issue 23): PostgreSQL killed (pg_ctl stop -m immediate, or SIGKILL of the
# postmaster and its processes) this many times during the bank test, then started with crash
# recovery.
# Answers seen while Redis is down below which the Redis check does not judge.
REDIS_CHECK_MIN_ANSWERS = 5
PG_CRASHES = int(os.environ.get("CHAOS_PG_CRASHES", "1" if QUICK else "3"))
# "Stripe away" (issue 17): localstripe stopped 20-30 s this many times during the bank test.
STRIPE_OUTAGES = int(os.environ.get("CHAOS_STRIPE_OUTAGES", "1" if QUICK else "3"))
# The settle's reconciliations (after the faults) page through localstripe's whole store:
# their Stripe timeout (seconds), not the run's short one (see Chaos.reconcile_settled).
SETTLE_STRIPE_TIMEOUT = "60"
# Issue 23 (after #15's two-server setup): the full run drives CHAOS_SERVERS web servers and
# CHAOS_WORKERS Celery workers; the quick run (inside make test) one of each. The full run
# puts them behind PgBouncer in session pooling (CHAOS_PGBOUNCER=session, its default; 0 =
# straight to PostgreSQL), which is restarted among the faults. CHAOS_PGBOUNCER=transaction
# (or 1) is transaction pooling: the web servers and workers then take their session
# advisory locks (payout batch, reconciliation, a recharge's Stripe calls) on a lock
# connection straight to PostgreSQL (DATABASE_DIRECT_URL, wallets/services/locks.py), as
# docs/operations.md says; in session pooling they go through PgBouncer like the rest.
SERVERS = int(os.environ.get("CHAOS_SERVERS", "1" if QUICK else "2"))
WORKERS = int(os.environ.get("CHAOS_WORKERS", "1" if QUICK else "2"))
_POOL_MODES = {"": None, "0": None, "1": "transaction", "transaction": "transaction",
               "session": "session"}  # fmt: skip
PGBOUNCER_MODE = _POOL_MODES[os.environ.get("CHAOS_PGBOUNCER", "0" if QUICK else "session")]
# CHAOS_FAULTS=0: the same load without any fault, to measure what limits the op rate.
NO_FAULTS = os.environ.get("CHAOS_FAULTS", "1") == "0"

WORK = Path(tempfile.mkdtemp(prefix="applause-chaos."))
stats: Counter = Counter()
faults: Counter = Counter()
problems: list[str] = []  # discrepancies, one line each
notes: list[str] = []


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- services


class Postgres:
    """The cluster to restart: the services' one (data dir under APPLAUSE_SERVICES_DIR) or a
    private one (CHAOS_PRIVATE_SERVICES=1)."""

    def __init__(self) -> None:
        base = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
        self.private = PRIVATE
        if self.private:
            self.dir = WORK / "pg"
            self.data = self.dir / "data"
            self.port = free_port()
            self.host = "127.0.0.1"
            self.user = "postgres"
        else:
            services = Path(os.environ.get("APPLAUSE_SERVICES_DIR", ""))
            self.dir = services / "pg"
            self.data = self.dir / "data"
            self.port = base.port or 5432
            self.host = base.hostname or "127.0.0.1"
            self.user = base.username or "postgres"
        self.db = f"chaos_{os.getpid()}"

    def start_private(self) -> None:
        WORK.chmod(0o755)  # the postgres user must reach its data dir inside our work dir
        subprocess.run(["install", "-d", "-o", "postgres", "-g", "postgres", str(self.dir)])
        run_as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        )
        run_as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "pg.log"),
                "-w",
                "-o",
                # Production durability (PostgreSQL's defaults: fsync, synchronous_commit,
                # full_page_writes on): the crashes below must not lose an acknowledged commit.
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c max_connections=200",
                "start",
            ]
        )

    def stop_private(self) -> None:
        if self.private and self.data.exists():
            run_as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                check=False,
            )

    def url(self, db: str | None = None) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{db or self.db}"

    def can_restart(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def restart(self) -> None:
        # -l: the restarted server must not inherit our pipes (we would wait on them forever).
        run_as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "pg.log"),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "restart",
            ],
            capture=False,
        )

    # ---- crashes (issue 23): no shutdown checkpoint, the next start replays the WAL
    def crash(self, how: str) -> None:
        """``immediate``: ``pg_ctl stop -m immediate`` (every process quits at once, nothing
        flushed); ``kill``: SIGKILL the postmaster and then each of its processes, as the
        kernel's OOM killer or a power cut would leave it."""
        if how == "immediate":
            run_as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            )
            return
        pid = self.postmaster_pid()
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in [pid, *children]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.clear_stale_lock()

    def clear_stale_lock(self) -> None:
        """After a SIGKILL the postmaster's lock file stays behind, naming a process that is
        dead but may linger as a zombie (here PID 1 does not reap at once): PostgreSQL's own
        check (kill(pid, 0)) then takes it for a running server and refuses to start. A lock
        file whose process is dead or a zombie is stale; an operator removes it, so do we."""
        lock = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            if not _alive(self.postmaster_pid()):
                lock.unlink()

    def start_after_crash(self) -> float:
        """Start it again with the options it ran with (postmaster.opts); it runs crash
        recovery before it accepts connections. Returns the seconds until it did."""
        opts = shlex.split((self.data / "postmaster.opts").read_text())[1:]
        args, skip = [], False
        for arg in opts:  # -D is pg_ctl's to give
            if skip:
                skip = False
            elif arg == "-D":
                skip = True
            else:
                args.append(arg)
        started = time.monotonic()
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "pg.log")]
        for attempt in range(3):
            self.clear_stale_lock()
            try:
                run_as_postgres(
                    [*pg_ctl, "-o", shlex.join(args), "-w", "-t", "120", "start"], capture=False
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                time.sleep(1.0)
        return time.monotonic() - started

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def durability(self) -> dict[str, str]:
        psql = [str(PG_BIN / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user]
        query = (
            "SELECT name, setting FROM pg_settings "
            "WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
        )
        out = subprocess.run(
            [*psql, "-d", "postgres", "-At", "-c", query],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return dict(line.split("|", 1) for line in out.split())

    def psql(self, sql: str, db: str = "postgres") -> None:
        subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
        )


def run_as_postgres(cmd: list[str], check: bool = True, capture: bool = True) -> None:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    result = subprocess.run(cmd, stdout=output, stderr=output, text=True, cwd="/")
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stdout}{result.stderr}")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


class Redis:
    def __init__(self) -> None:
        self.private = PRIVATE
        if self.private:
            self.port = free_port()
            self.dir = WORK / "redis"
            self.dir.mkdir()
            self.cache_db, self.broker_db = 0, 1
        else:
            url = urllib.parse.urlsplit(os.environ["REDIS_URL"])
            self.port = url.port or 6379
            self.dir = Path(os.environ.get("APPLAUSE_SERVICES_DIR", str(WORK))) / "redis"
            # Databases of our own on the shared server (the test suite uses 0..~5).
            self.cache_db, self.broker_db = 14, 15

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--pidfile",
                str(self.dir / "pid"),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            check=True,
            capture_output=True,
        )
        for _ in range(100):
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError("redis did not come back")

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True
        )
        for _ in range(100):
            if not self.ping():
                return
            time.sleep(0.05)

    def ping(self) -> bool:
        result = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True)
        return result.returncode == 0 and b"PONG" in result.stdout

    def flush(self, *dbs: int) -> None:
        for db in dbs:
            subprocess.run(["redis-cli", "-p", str(self.port), "-n", str(db), "flushdb"])


class Proc:
    """A child in its own process group, restartable."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name, self.cmd, self.env = name, cmd, env
        self.proc: subprocess.Popen | None = None
        self.log = open(WORK / f"{name}.log", "ab")  # noqa: SIM115 (open while the process runs)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=REPO,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def children(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
                return [int(p) for p in fh.read().split()]
        except OSError:
            return []


class PrivateStripe:
    """The run's own localstripe (issue 17), so the "Stripe away" fault may stop it.

    ``pause`` is SIGSTOP: the port stays open and requests hang until the client's timeout,
    as with a Stripe that stopped answering; ``resume`` (SIGCONT) lets it answer what queued
    up meanwhile, as a Stripe that did work whose answer we had given up on. Its state lives
    in its memory, so it is never restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                PYTHON,
                str(REPO / "scripts" / "localstripe_server.py"),
                *("--port", str(self.port), "--from-scratch"),
                "--honour-idempotency-keys",
            ],
            cwd=REPO,
            stdout=open(WORK / "localstripe.log", "ab"),  # noqa: SIM115 - lives with the run
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not port_answers(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the run's localstripe did not start")
            time.sleep(0.1)

    def pause(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- the run


class Chaos:
    def __init__(self) -> None:
        self.pg = Postgres()
        self.redis = Redis()
        self.ports = [free_port() for _ in range(SERVERS)]
        self.bases = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.base = self.bases[0]  # the one Stripe's webhooks are registered to
        # PgBouncer (as docs/operations.md sets it up for many web hosts; pooling per
        # PGBOUNCER_MODE) in front of the run's PostgreSQL; restarted among the faults. Session
        # pooling lends a server connection per client connection for its whole life: room for
        # every web thread and worker process of the run.
        self.bouncer = (
            PgBouncer(
                host=self.pg.host,
                port=self.pg.port,
                user=self.pg.user,
                mode=PGBOUNCER_MODE,
                pool=20 if PGBOUNCER_MODE == "transaction" else 60,
            )
            if PGBOUNCER_MODE is not None
            else None
        )
        self.webs: list[Proc] = []
        self.workers: list[Proc] = []
        self.webhook_id = f"chaos{os.getpid()}"
        self.stripe = PrivateStripe()
        self.stripe_base = self.stripe.url
        self.stripe_down = False
        self.during_stripe_away: Counter = Counter()
        self.stop_faults = threading.Event()
        self.stop_payouts = threading.Event()
        self.lock = threading.Lock()  # one fault at a time, and none while checking
        self.users: list[dict] = []
        self.creators: list[str] = []
        self.customer_ids: set[str] = set()
        self.seen: dict[str, list] = {}  # idempotency key -> answers (status, body)
        self.connect = None
        self.redis_down = False
        self.during_redis_down: Counter = Counter()
        # Issue 23: PostgreSQL crashes and what the clients were told.
        self.pg_down = False
        self.during_pg_down: Counter = Counter()
        self.acked: dict[str, tuple] = {}  # key -> (op, user id, answer) for every 2xx
        self.gave_up_keys: set[str] = set()
        self.found_by_retry: set[str] = set()
        self.creator_clients: list[dict] = []
        self.home: dict[str, int] = {}  # token -> index of its web server

    # ---- setup
    def app_env(self) -> dict[str, str]:
        """The web servers' and workers' environment: through PgBouncer when it runs (the
        chaos driver's checks and the operator's manage.py commands go straight to
        PostgreSQL)."""
        env = self.env()
        if self.bouncer is not None:
            env["DATABASE_URL"] = self.bouncer.url(self.pg.db)
            if PGBOUNCER_MODE == "transaction":
                env["DATABASE_DIRECT_URL"] = self.pg.url()
                env["DATABASE_POOL_MODE"] = "transaction"
        return env

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"PYTEST_XDIST_WORKER"}}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=self.pg.url(),
            REDIS_URL=self.redis.url(self.redis.cache_db),
            CELERY_BROKER_URL=self.redis.url(self.redis.broker_db),
            CACHE_KEY_PREFIX=f"chaos{os.getpid()}",
            DEBUG="0",
            APPLAUSE_TESTING="0",
            SECRET_KEY=os.environ.get("SECRET_KEY") or "chaos-" + uuid.uuid4().hex * 2,
            SECURE_SSL_REDIRECT="0",  # TLS ends at the load balancer; localstripe posts http
            THROTTLE_MONEY="100000000/min",
            THROTTLE_AUTH="100000000/min",
            THROTTLE_RECHARGE="100000000/min",
            THROTTLE_SIGNUP="100000000/min",
            EARNINGS_HOLD_DAYS="0",
            PAYOUT_MINIMUM="0.01",
            PAYOUT_APPROVAL_ABOVE="100000000",
            PAYOUT_TAX_FORM_THRESHOLD="1000000000",
            DAILY_PURCHASE_LIMIT="1000000000",
            DAILY_GIFT_LIMIT="1000000000",
            CONN_MAX_AGE="60",
            # PostgreSQL is restarted under load here: check a reused connection per request.
            CONN_HEALTH_CHECKS="1",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        if self.connect is not None:
            env["STRIPE_CONNECT_API_BASE"] = self.connect.url
        env.update(self.stripe_env())
        return env

    def setup(self) -> None:
        self.stripe.start()
        if self.pg.private:
            self.pg.start_private()
        if self.redis.private:
            self.redis.start()
        self.redis.flush(self.redis.cache_db, self.redis.broker_db)
        from payouts.tests.connect_fake import ConnectFake

        self.connect = ConnectFake().start()
        self.pg.psql(f'CREATE DATABASE "{self.pg.db}"')
        os.environ.update(self.env())
        log(f"database {self.pg.db}; work dir {WORK}; seed {SEED}")
        self.manage("migrate", "--noinput", quiet=True)
        import django

        django.setup()
        self.seed()
        if self.bouncer is not None:
            if pgbouncer_binary() is None:
                log("installing pgbouncer (apt-get)")
                install_pgbouncer()
            self.bouncer.start()
        for n, port in enumerate(self.ports):
            self.webs.append(
                Proc(
                    f"web{n}",
                    [
                        str(BIN / "gunicorn"),
                        "-c",
                        "config/gunicorn.conf.py",
                        "--workers",
                        # Two servers share the 2 cores: two workers each.
                        str(CFG["web_workers"] if SERVERS == 1 else 2),
                        "--bind",
                        f"127.0.0.1:{port}",
                        "--graceful-timeout",
                        "5",
                        "--timeout",
                        "60",
                    ],
                    self.app_env(),
                )
            )
        for n in range(WORKERS):
            # Beat stays single (the run sends the payout batch and the release itself).
            concurrency = str(max(1, 2 // WORKERS))
            self.workers.append(
                Proc(
                    f"worker{n}",
                    [
                        *(str(BIN / "celery"), "-A", "config", "worker", "-l", "warning"),
                        *("--concurrency", concurrency, "-n", f"chaos{n}@%h"),
                    ],
                    self.app_env(),
                )
            )
        for proc in (*self.webs, *self.workers):
            proc.start()
        self.wait_web()
        self.register_webhook()

    def manage(
        self, *args: str, quiet: bool = False, check: bool = True, env: dict | None = None
    ) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=REPO,
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)}: {result.stdout}{result.stderr}")
        if not quiet:
            line = (result.stdout.strip().splitlines() or [""])[-1]
            log(f"manage.py {' '.join(args)}: {line[:300]}")
        return result.stdout

    def seed(self) -> None:
        from datetime import date

        from django.db import transaction
        from knox.models import AuthToken

        from accounts.models import User
        from creators.services import creator_create
        from gifts.models import Gift
        from payouts.models import PayoutMethod, Rail

        with transaction.atomic():
            Gift.objects.create(name="Chaos rose", slug="chaos-rose", coins=1)
            Gift.objects.create(name="Chaos star", slug="chaos-star", coins=10)
            for i in range(CFG["creators"]):
                user = User.objects.create(
                    username=f"creator{i}",
                    email=f"c{i}@example.com",
                    date_of_birth=date(1990, 1, 1),
                )
                creator = creator_create(user=user, handle=f"chaos{i}", display_name=f"Creator {i}")
                PayoutMethod.objects.create(
                    creator=creator,
                    rail=Rail.STRIPE,
                    stripe_account_id=self.connect.add_account(payouts_enabled=True),
                    is_verified=True,
                )
                self.creators.append(creator.handle)
                _instance, token = AuthToken.objects.create(user=user)
                self.creator_clients.append({"id": user.pk, "token": token})
            for i in range(CFG["clients"]):
                user = User.objects.create(
                    username=f"viewer{i}", email=f"v{i}@example.com", date_of_birth=date(1990, 1, 1)
                )
                _instance, token = AuthToken.objects.create(user=user)
                self.users.append({"id": user.pk, "token": token, "coins": 0})
        for n, client in enumerate([*self.users, *self.creator_clients]):
            self.home[client["token"]] = n % SERVERS

    def wait_web(self, seconds: float = 60, bases: list[str] | None = None) -> None:
        import urllib.request

        deadline = time.monotonic() + seconds
        for base in bases or self.bases:
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{base} did not answer /healthz") from None
                    time.sleep(0.2)

    def register_webhook(self, events: list[str] | None = None) -> None:
        import urllib.request

        fields = [("url", f"{self.base}/api/v1/webhooks/stripe/")]
        fields.append(("secret", os.environ["STRIPE_WEBHOOK_SECRET"]))
        fields += [("events[]", e) for e in events or []]
        data = urllib.parse.urlencode(fields).encode()
        url = f"{self.stripe_base}/_config/webhooks/{self.webhook_id}"
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10):
            pass

    # ---- faults
    def fault_loop(self) -> None:
        kinds = ["web_worker", "web_worker", "web_all", "worker", "worker"]
        if self.bouncer is not None:
            kinds.append("pgbouncer_restart")
        # The scheduled faults fall in the first 60 % of the quick run and the loop wakes for
        # them on time: on a loaded machine a web restart can take 20 s, and a Redis outage
        # scheduled late was once never injected before the clients stopped.
        window = (0.15, 0.6) if QUICK else (0.15, 0.85)
        schedule_pg = sorted(
            rng.uniform(*window) * CFG["bank_seconds"] for _ in range(CFG["pg_restarts"])
        )
        schedule_redis = sorted(
            rng.uniform(*window) * CFG["bank_seconds"] for _ in range(CFG["redis_outages"])
        )
        started = time.monotonic()
        forced = ["web_all", "worker"]  # at least one of each, even in the quick run
        if self.bouncer is not None:
            forced.append("pgbouncer_restart")

        def next_wait() -> float:
            wait = rng.uniform(*CFG["fault_every"])
            due = [*schedule_pg[:1], *schedule_redis[:1]]
            if due:
                wait = min(wait, max(0.0, min(due) - (time.monotonic() - started)))
            return wait

        while not self.stop_faults.wait(next_wait()):
            elapsed = time.monotonic() - started
            if elapsed >= CFG["bank_seconds"]:
                return  # the clients finish their last operations without new faults
            if schedule_pg and elapsed >= schedule_pg[0]:
                schedule_pg.pop(0)
                kind = "pg_restart"
            elif schedule_redis and elapsed >= schedule_redis[0]:
                schedule_redis.pop(0)
                kind = "redis_down"
            else:
                kind = forced.pop(0) if forced else rng.choice(kinds)
            try:
                with self.lock:
                    self.inject(kind)
            except Exception as exc:
                problems.append(f"fault {kind} could not be injected or recovered: {exc}")
                log(traceback.format_exc())

    def inject(self, kind: str) -> None:
        log(f"fault: {kind}")
        faults[kind] += 1
        if kind == "web_worker":
            pids = rng.choice(self.webs).children()
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)  # the gunicorn master forks a new one
        elif kind == "web_all":
            # One whole web server (of two: the other keeps serving, its clients' retries
            # go there as a load balancer would send them).
            n = rng.randrange(len(self.webs))
            self.webs[n].kill()
            time.sleep(rng.uniform(0.2, 2.0))
            self.webs[n].start()
            self.wait_web(bases=[self.bases[n]])
        elif kind == "worker":
            worker = rng.choice(self.workers)
            worker.kill()
            time.sleep(rng.uniform(0.2, 2.0))
            worker.start()
        elif kind == "pgbouncer_restart":
            assert self.bouncer is not None
            self.pg_down = True  # every client connection dropped: 503s expected meanwhile
            try:
                self.bouncer.stop()
                time.sleep(rng.uniform(0.5, 2.0))
                self.bouncer.start()
            finally:
                self.pg_down = False
            self.wait_web()
        elif kind == "pg_restart":
            if not self.pg.can_restart():
                notes.append("pg_restart skipped: no data dir (not under with_services.sh)")
                return
            self.pg.restart()
            self.wait_web()
        elif kind == "redis_down":
            self.redis.stop()
            self.redis_down = True
            time.sleep(rng.uniform(3.0, 6.0))
            self.redis_down = False
            self.redis.start()

    # ---- payouts in the background
    def payout_loop(self) -> None:
        from creators.tasks import release_earnings_task
        from payouts.tasks import payout_batch_task

        # Sent to the workers, as beat sends them: a ``manage.py release_earnings`` here (a
        # Django start, ~2 s of CPU, every 3-6 s) took a fifth of the machine's 2 cores.
        while not self.stop_payouts.wait(rng.uniform(3.0, 6.0)):
            try:
                release_earnings_task.apply_async(retry=False)
                payout_batch_task.apply_async(retry=False)
                stats["payout_batches_sent"] += 1
            except Exception as exc:  # the database or Redis may be down: try later
                stats["payout_batches_not_sent"] += 1
                log(f"payout batch not started ({type(exc).__name__})")

    # ---- clients
    async def request(self, session, method: str, path: str, token: str, body=None, key=None):
        # Each client has its home server; a connection that fails sends the retry to the
        # next one (a load balancer's health check would).
        server = self.home.get(token, 0)
        """One logical operation: retried (same key) until an answer that is not 5xx.

        Returns (status, json) or (None, None) when it gave up. Some attempts use a tiny
        client timeout: the client gives up mid-request and retries with the same key.
        """
        import aiohttp

        headers = {"Authorization": f"Token {token}"}
        if key:
            headers["Idempotency-Key"] = key
        for attempt in range(60):
            short = rng.random() < 0.04
            timeout = aiohttp.ClientTimeout(total=rng.uniform(0.01, 0.15) if short else 30)
            sent_while_stripe_away = self.stripe_down
            try:
                async with session.request(
                    method, self.bases[server] + path, json=body, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    data = await response.json(content_type=None) if status != 204 else None
                    retry_after = response.headers.get("Retry-After")
            except TimeoutError:
                stats["client_timeouts" if short else "server_timeouts"] += 1
                await asyncio.sleep(0.05)
                continue
            except (aiohttp.ClientError, ValueError, ConnectionError):
                stats["connection_errors"] += 1
                server = (server + 1) % len(self.bases)
                await asyncio.sleep(min(2.0, 0.1 * (attempt + 1)))
                continue
            if self.redis_down:
                self.during_redis_down[status] += 1
            self.pg_down_note(status, data, response.headers)
            self.stripe_away_note(path, status, data, retry_after, sent_while_stripe_away)
            if status >= 500:
                stats[f"http_{status}"] += 1
                await asyncio.sleep(retry_pause(attempt, retry_after))
                continue
            if attempt:
                stats["retried_ops"] += 1
            self.answered(key, attempt, response.headers)
            if key:
                self.seen.setdefault(key, []).append((status, data))
            return status, data
        return None, None

    async def client(self, session, user: dict, deadline: float) -> None:
        while time.monotonic() < deadline:
            r = rng.random()
            if user["coins"] < 30 or r < 0.08:
                op, path = "recharge", "/api/v1/recharges/"
                body = {
                    "coins": rng.randint(100, 3000),
                    "currency": "USD",
                    "payment_method": "pm_card_visa",
                }
            elif r < 0.85:
                op, path = "gift", "/api/v1/gifts/send/"
                body = {
                    "creator": rng.choice(self.creators),
                    "gift": rng.choice(["chaos-rose", "chaos-rose", "chaos-star"]),
                    "quantity": rng.randint(1, 5),
                }
            else:
                op, path, body = "read", "/api/v1/wallet/", None
            stats["ops_tried"] += 1
            stats[f"{op}_tried"] += 1
            key = str(uuid.uuid4()) if body else None
            status, data = await self.request(
                session, "POST" if body else "GET", path, user["token"], body, key
            )
            if status is None:
                stats["ops_gave_up"] += 1
                if key:
                    self.gave_up_keys.add(key)
                continue
            if 200 <= status < 300:
                stats["ops_succeeded"] += 1
                stats[f"{op}_succeeded"] += 1
                self.acknowledge(op, key, user, data)
                if op == "recharge" and data.get("status") == "succeeded":
                    user["coins"] += data["coins"]
                    await self.maybe_refund(session, user, data)
                elif op == "gift":
                    user["coins"] = data["wallet"]["coins"]
                elif op == "read":
                    user["coins"] = data["coins"]
            else:
                stats["ops_refused"] += 1
                stats[f"refused_{status}"] += 1
                code = (data or {}).get("error", {}).get("code", "")
                if status == 409 or status == 500:
                    problems.append(f"{op} {key}: unexpected {status} {code}")
                if code == "insufficient_funds":
                    user["coins"] = 0
            # A retry of a finished operation must replay the first answer exactly.
            if key and rng.random() < 0.03:
                again, replay = await self.request(session, "POST", path, user["token"], body, key)
                stats["replays_tried"] += 1
                if again is not None and (again, replay) != (status, data):
                    problems.append(f"{op} {key}: replay answered {again} {replay}, not {status}")

    async def bank(self) -> None:
        import aiohttp

        deadline = time.monotonic() + CFG["bank_seconds"]
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        progress = asyncio.create_task(self.progress(time.monotonic()))
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(
                *(self.client(session, u, deadline) for u in self.users),
                *(self.creator_client(session, c, deadline) for c in self.creator_clients),
            )
        progress.cancel()

    async def progress(self, started: float) -> None:
        """A line every 30 s: how far the bank test has come, and how fast."""
        while True:
            await asyncio.sleep(30)
            elapsed = time.monotonic() - started
            log(
                f"progress: {stats['ops_tried']} operations in {elapsed:.0f} s "
                f"({stats['ops_tried'] / elapsed:.0f}/s), {sum(faults.values())} faults"
            )

    # ---- phase 2: webhooks
    def signed(self, payload: bytes) -> str:
        timestamp = int(time.time())
        secret = os.environ["STRIPE_WEBHOOK_SECRET"].encode()
        digest = hmac.new(secret, f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={digest}"

    async def webhooks(self) -> None:
        import aiohttp
        import stripe

        # The browser's half of the flow: pending recharges, cards confirmed at Stripe. The
        # webhook is narrowed to an event we ignore, so delivery is all ours to mistreat.
        self.register_webhook(events=["customer.updated"])
        client = stripe.StripeClient(
            os.environ["STRIPE_SECRET_KEY"], base_addresses={"api": self.stripe_base}
        )
        user = self.users[0]
        created = []
        async with aiohttp.ClientSession() as session:
            for _ in range(CFG["webhook_recharges"]):
                body = {"coins": rng.randint(100, 1000), "currency": "USD"}
                status, data = await self.request(
                    session, "POST", "/api/v1/recharges/", user["token"], body, str(uuid.uuid4())
                )
                stats["ops_tried"] += 1
                if status == 201:
                    stats["ops_succeeded"] += 1
                    created.append(data["payment_intent"])
                else:
                    stats["ops_refused"] += 1

            def confirm(pi: str) -> dict:
                card = "pm_card_visa" if rng.random() < 0.85 else "pm_card_chargeCustomerFail"
                try:
                    # localstripe cannot confirm with a payment_method: attach it first.
                    client.v1.payment_intents.update(pi, params={"payment_method": card})
                    client.v1.payment_intents.confirm(pi)
                except stripe.CardError:
                    pass  # the declined card
                except stripe.StripeError as exc:
                    if len(notes) < 5:
                        notes.append(f"confirm {pi}: {type(exc).__name__} {exc}"[:200])
                return client.v1.payment_intents.retrieve(pi).to_dict()

            intents = await asyncio.gather(*(asyncio.to_thread(confirm, pi) for pi in created))
            deliveries = []
            for intent in intents:
                kind = (
                    "payment_intent.succeeded"
                    if intent["status"] == "succeeded"
                    else "payment_intent.payment_failed"
                )
                event = {
                    "id": f"evt_chaos_{uuid.uuid4().hex[:20]}",
                    "object": "event",
                    "type": kind,
                    "created": int(time.time()),
                    "data": {"object": intent},
                }
                payload = json.dumps(event).encode()
                copies = rng.choice([0, 1, 1, 2, 3])
                deliveries += [payload] * copies
                stats["webhook_events"] += 1
                stats["webhook_events_never_sent"] += copies == 0
            rng.shuffle(deliveries)
            semaphore = asyncio.Semaphore(16)

            async def deliver(payload: bytes) -> None:
                async with semaphore:
                    for _ in range(30):
                        try:
                            async with session.post(
                                f"{self.base}/api/v1/webhooks/stripe/",
                                data=payload,
                                headers={
                                    "Stripe-Signature": self.signed(payload),
                                    "Content-Type": "application/json",
                                },
                            ) as response:
                                await response.read()
                                if response.status == 200:
                                    stats["webhook_deliveries"] += 1
                                    return
                                stats[f"webhook_http_{response.status}"] += 1
                        except aiohttp.ClientError:
                            stats["webhook_connection_errors"] += 1
                        await asyncio.sleep(0.3)

            # A web worker dies in the middle of the deliveries, too.
            async def kill_one() -> None:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(self.inject, "web_worker")

            await asyncio.gather(kill_one(), *(deliver(p) for p in deliveries))
        self.webhook_result = (created, intents, len(deliveries))

    def webhooks_check(self) -> None:
        created, intents, deliveries = self.webhook_result
        fresh_connections()
        self.register_webhook()
        self.reconcile_settled()
        from wallets.models import Recharge, RechargeStatus

        by_status = Counter(
            Recharge.objects.filter(payment_intent__in=created).values_list("status", flat=True)
        )
        paid = sum(1 for i in intents if i["status"] == "succeeded")
        if by_status[RechargeStatus.SUCCEEDED] != paid:
            problems.append(
                f"webhooks: {paid} payments succeeded, {by_status[RechargeStatus.SUCCEEDED]} "
                "recharges credited"
            )
        notes.append(
            f"webhook phase: {len(created)} recharges, {paid} paid, "
            f"{deliveries} deliveries, {stats['webhook_events_never_sent']} events never delivered"
        )

    # ---- the end: settle and check
    def settle(self) -> None:
        from payouts.models import OPEN_STATUSES, Payout

        fresh_connections()

        self.reconcile_settled()
        self.reconcile_settled()
        self.manage("release_earnings")
        for _ in range(40):
            self.manage("run_payouts", quiet=True)
            time.sleep(1.5)
            self.manage("release_earnings", quiet=True)
            open_payouts = Payout.objects.filter(status__in=OPEN_STATUSES).count()
            from payouts.services import payout_candidates

            if open_payouts == 0 and not payout_candidates():
                break
        else:
            problems.append("payouts did not settle: some stay open")

    def reconcile_settled(self, attempts: int = 3) -> None:
        """One reconciliation that finishes, as the beat gets one, after the faults.

        localstripe has no list filters (``created[gte]``): a reconciliation pages through
        every PaymentIntent of the run (thousands, O(n^2) in localstripe: seconds per page on
        a loaded machine), which the run's STRIPE_TIMEOUT of 4 s (kept short so that a Stripe
        that stops answering costs a web thread little) cannot cover: a quiet default run
        (seed 6101) failed its settle on 8 such timeouts in a row. That is a limit of the
        stand-in, not of the code (real Stripe filters by date and answers a page in well
        under a second), so the settle's reconciliations get a Stripe timeout of
        SETTLE_STRIPE_TIMEOUT; the in-run ones (beat's, Stripe away's) keep the short one. A
        run that still fails is tried again a few seconds later (counted); a failure that
        stays is the run's failure."""
        for attempt in range(attempts):
            try:
                self.manage("reconcile", env={"STRIPE_TIMEOUT": SETTLE_STRIPE_TIMEOUT})
                return
            except RuntimeError as exc:
                if attempt == attempts - 1:
                    raise
                stats["settle_reconcile_retries"] += 1
                lines = str(exc).strip().splitlines()
                said = [line for line in lines if "reconcile: payments" in line] or lines[-1:]
                log(f"reconcile failed, again in 5 s: {(said or [''])[0][:300]}")
                time.sleep(5)

    def check(self) -> None:
        from django.db.models import Sum

        from accounts.models import IdempotencyRecord
        from gifts.models import GiftEvent
        from payouts.models import Payout, PayoutStatus
        from wallets.models import (
            CREDITED_STATUSES,
            Account,
            AccountKind,
            LedgerTransaction,
            Recharge,
            RechargeStatus,
            StripeCustomer,
        )
        from wallets.services import account_balance

        result = subprocess.run(
            [PYTHON, "manage.py", "verify_ledger"],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            problems.append("verify_ledger failed: " + (result.stdout + result.stderr)[-1500:])

        def total(kind: str) -> int:
            return sum(account_balance(a) for a in Account.objects.filter(kind=kind))

        # Coins: money in = wallets + debt + spent (+ adjustments, write-offs: none here).
        recharged = (
            Recharge.objects.filter(status=RechargeStatus.SUCCEEDED).aggregate(n=Sum("coins"))["n"]
            or 0
        )
        issued = -total(AccountKind.COIN_ISSUANCE)
        wallets = total(AccountKind.WALLET)
        debt = total(AccountKind.COIN_DEBT)
        spent = total(AccountKind.COINS_SPENT)
        if not (recharged == issued == wallets + debt + spent):
            problems.append(
                f"coins: recharged {recharged}, issued {issued}, wallets {wallets} + debt {debt} "
                f"+ spent {spent} = {wallets + debt + spent}"
            )
        gifted = GiftEvent.objects.aggregate(n=Sum("coins"))["n"] or 0
        if gifted != spent:
            problems.append(f"coins: gift events {gifted} != coins spent {spent}")
        # Diamonds: issued = pending + available + in payout + paid out.
        d_issued = -total(AccountKind.DIAMOND_ISSUANCE)
        parts = {
            k: total(k)
            for k in (
                AccountKind.DIAMONDS_PENDING,
                AccountKind.DIAMONDS_AVAILABLE,
                AccountKind.DIAMONDS_IN_PAYOUT,
                AccountKind.DIAMONDS_PAID_OUT,
            )
        }
        if d_issued != sum(parts.values()):
            problems.append(f"diamonds: issued {d_issued} != {parts}")
        paid = Payout.objects.filter(status=PayoutStatus.PAID)
        paid_diamonds = paid.aggregate(n=Sum("diamonds"))["n"] or 0
        if paid_diamonds != parts[AccountKind.DIAMONDS_PAID_OUT]:
            problems.append(f"diamonds: paid payouts {paid_diamonds} != ledger paid out")
        for payout in paid:
            transfers = self.connect.transfers_for_payout(payout.pk)
            if len(transfers) != 1:
                problems.append(f"payout {payout.pk}: {len(transfers)} transfers at the rail")
        paid_ids = set(paid.values_list("pk", flat=True))
        with self.connect.lock:
            rail_payouts = Counter(
                int(t["metadata"]["payout_id"]) for t in self.connect.transfers.values()
            )
        for payout_id, count in rail_payouts.items():
            if count != 1 or payout_id not in paid_ids:
                problems.append(f"rail: payout {payout_id} has {count} transfers, paid here: no")
        # Every succeeded PaymentIntent of ours at Stripe credited exactly once.
        import stripe

        client = stripe.StripeClient(
            os.environ["STRIPE_SECRET_KEY"], base_addresses={"api": self.stripe_base}
        )
        customers = set(StripeCustomer.objects.values_list("customer_id", flat=True))
        succeeded_pis = []
        first_row = {}  # payment intent -> the id of the recharge row it was created for
        for intent in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
            if intent.customer in customers and intent.status == "succeeded":
                succeeded_pis.append(intent.id)
                metadata = intent.to_dict().get("metadata") or {}
                first_row[intent.id] = str(metadata.get("recharge_id"))
        credited = Counter(
            Recharge.objects.filter(
                payment_intent__in=succeeded_pis,
                status__in=CREDITED_STATUSES,  # refunds too
            ).values_list("payment_intent", flat=True)
        )
        ledger = Counter(
            LedgerTransaction.objects.filter(
                idempotency_key__in=[f"recharge:{pi}" for pi in succeeded_pis]
            ).values_list("idempotency_key", flat=True)
        )
        for pi in succeeded_pis:
            if credited[pi] != 1 or ledger[f"recharge:{pi}"] != 1:
                problems.append(
                    f"payment {pi} succeeded at Stripe: {credited[pi]} credited recharges, "
                    f"{ledger[f'recharge:{pi}']} ledger credits"
                )
        not_paid = Recharge.objects.filter(status=RechargeStatus.SUCCEEDED).exclude(
            payment_intent__in=succeeded_pis
        )
        for recharge in not_paid[:20]:
            # A crash can roll back the StripeCustomer row of a purchase whose PaymentIntent
            # (under that customer) went on to succeed and be credited: ask Stripe about it.
            intent = client.v1.payment_intents.retrieve(recharge.payment_intent)
            credits = LedgerTransaction.objects.filter(
                idempotency_key=f"recharge:{intent.id}"
            ).count()
            if intent.status == "succeeded" and credits == 1:
                stats["paid_under_rolled_back_customer"] += 1
                continue
            problems.append(
                f"recharge {recharge.pk} credited ({credits} ledger credits) but its payment "
                f"{intent.id} is {intent.status} (customer {intent.customer})"
            )
        stats["payments_succeeded_at_stripe"] = len(succeeded_pis)
        # No idempotency key applied twice: one business row per applied key.
        records = IdempotencyRecord.objects.filter(response_status=201)
        recharge_keys = records.filter(path="/api/v1/recharges/").count()
        gift_keys = records.filter(path="/api/v1/gifts/send/").count()
        # Every applied key has its recharge (the row carries the client's key: they commit
        # together, in the purchase's first phase).
        applied = set(records.filter(path="/api/v1/recharges/").values_list("user_id", "key"))
        keyed = set(Recharge.objects.exclude(client_key=None).values_list("user_id", "client_key"))
        if applied - keyed:
            problems.append(
                f"{len(applied - keyed)} of {recharge_keys} applied recharge keys have no recharge"
            )
        if GiftEvent.objects.count() != gift_keys:
            problems.append(f"{GiftEvent.objects.count()} gifts for {gift_keys} keys")
        # What the clients were told happened, happened (acknowledged writes are not lost).
        gift_ids = set(GiftEvent.objects.values_list("pk", flat=True))
        for key, answers in self.seen.items():
            statuses = {(s, json.dumps(d, sort_keys=True)) for s, d in answers}
            if len(statuses) > 1:
                problems.append(f"key {key}: different answers {sorted(statuses)[:2]}")
            status, data = answers[0]
            if status == 201 and "coins_spent" in (data or {}) and data["id"] not in gift_ids:
                problems.append(f"gift {data['id']} acknowledged but not in the database")
        stats["coins_recharged"] = recharged
        stats["coins_spent"] = spent
        stats["diamonds_paid_out"] = parts[AccountKind.DIAMONDS_PAID_OUT]
        stats["payouts_paid"] = len(paid_ids)

    def redis_check(self) -> None:
        """With Redis down, reads and gifts still answer (the cache fails open)."""
        answered = sum(n for s, n in self.during_redis_down.items() if s < 500)
        failed = sum(n for s, n in self.during_redis_down.items() if s >= 500)
        if faults["redis_down"]:
            notes.append(
                f"while Redis was down: {answered} answers < 500, {failed} >= 500 "
                f"({dict(self.during_redis_down)})"
            )
            # A few seconds of thin traffic (the quick run's few clients, some waiting on other
            # faults) can hold only one or two answers: judge only a real sample.
            if answered == 0 and failed >= REDIS_CHECK_MIN_ANSWERS:
                problems.append("Redis down: the API answered nothing")
            elif answered + failed < REDIS_CHECK_MIN_ANSWERS:
                notes.append("Redis down: too few answers in the window to judge")

    # ---- database crashes (issue 23): its own schedule beside fault_loop's
    def pg_crash_loop(self) -> None:
        """PG_CRASHES times during the bank test, PostgreSQL crashes (``pg_ctl stop -m
        immediate`` and SIGKILL of the postmaster, alternately) with gifts, recharges, refunds,
        payouts and the payout batch in flight, stays down a few seconds, and is started with
        crash recovery."""
        started = time.monotonic()
        # The quick run's crash comes after its Stripe outage (0.3-0.5 of the bank test, 12-16 s):
        # one at a time, so its 60 s still see every kind of answer.
        window = (0.72, 0.8) if QUICK else (0.1, 0.85)
        schedule = sorted(rng.uniform(*window) * CFG["bank_seconds"] for _ in range(PG_CRASHES))
        kinds = ["pg_crash_immediate", "pg_crash_kill"]
        rng.shuffle(kinds)
        for n, at in enumerate(schedule):
            if self.stop_faults.wait(max(0.0, at - (time.monotonic() - started))):
                return
            kind = kinds[n % 2]
            try:
                with self.lock:
                    self.pg_crash(kind)
            except Exception as exc:
                problems.append(f"fault {kind} could not be injected or recovered: {exc}")
                log(traceback.format_exc())

    def pg_crash(self, kind: str) -> None:
        if not self.pg.can_restart():
            notes.append(f"{kind} skipped: no data dir (not under with_services.sh)")
            return
        log(f"fault: {kind}")
        faults[kind] += 1
        self.pg_down = True
        try:
            self.pg.crash("immediate" if kind == "pg_crash_immediate" else "kill")
            time.sleep(rng.uniform(1.0, 4.0))  # down for a moment: the web answers 503
            recovery = self.pg.start_after_crash()
        finally:
            self.pg_down = False
        stats["pg_recovery_ms_max"] = max(stats["pg_recovery_ms_max"], int(recovery * 1000))
        self.wait_web()

    def durability_check(self) -> None:
        """The crash test means nothing on a PostgreSQL that may lose acknowledged commits."""
        settings = self.pg.durability()
        notes.append("PostgreSQL durability: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        lax = [k for k, v in settings.items() if v != "on"]
        if lax:
            problems.append(
                f"PostgreSQL runs without {', '.join(lax)}: run under APPLAUSE_PG_DURABLE=1 "
                "(make chaos) or CHAOS_PRIVATE_SERVICES=1"
            )

    def pg_down_note(self, status: int, data, headers) -> None:
        """While PostgreSQL is down: every answer of ours is < 500 or a 503 with Retry-After
        in the error format (database_unavailable, or service_busy)."""
        if not self.pg_down:
            return
        code = ((data or {}).get("error") or {}).get("code", "") if status >= 400 else ""
        self.during_pg_down[f"{status} {code}".strip()] += 1
        if status >= 500 and not (status == 503 and code and headers.get("Retry-After")):
            problems.append(f"PostgreSQL down: answered {status} {code or '(no error code)'}")

    # ---- what the clients were told (issue 23): every acknowledged answer, by key
    def answered(self, key: str | None, attempt: int, headers) -> None:
        """A key whose answer came only on a retry, as a replay: the first attempt did the work
        and its answer was lost (a crash, a kill, a client timeout)."""
        if key and attempt and headers.get("Idempotent-Replayed") == "true":
            self.found_by_retry.add(key)

    def acknowledge(self, op: str, key: str | None, user: dict, data) -> None:
        if key and op in ("gift", "recharge", "refund", "payout"):
            self.acked[key] = (op, user["id"], data)

    async def maybe_refund(self, session, user: dict, recharge: dict) -> None:
        """Now and then a viewer refunds the purchase just made (its coins are all there)."""
        # The quick run has few recharges: more of them are refunded, so it sees some.
        if recharge.get("status") != "succeeded" or rng.random() >= (0.25 if QUICK else 0.05):
            return
        key = str(uuid.uuid4())
        stats["ops_tried"] += 1
        stats["refund_tried"] += 1
        path = f"/api/v1/recharges/{recharge['id']}/refund/"
        status, data = await self.request(session, "POST", path, user["token"], None, key)
        if status is None:
            stats["ops_gave_up"] += 1
            self.gave_up_keys.add(key)
        elif status == 201:
            stats["ops_succeeded"] += 1
            stats["refund_succeeded"] += 1
            user["coins"] = data["wallet"]["coins"]
            self.acknowledge("refund", key, user, data)
        else:
            stats["ops_refused"] += 1
            stats[f"refused_{status}"] += 1
            code = ((data or {}).get("error") or {}).get("code", "")
            if status >= 500 or code not in ("coins_already_spent",):
                problems.append(f"refund {key}: unexpected {status} {code}")

    async def creator_client(self, session, creator: dict, deadline: float) -> None:
        """A creator cashes out now and then (an instant payout of the available diamonds)."""
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(2.0, 6.0))
            key = str(uuid.uuid4())
            stats["ops_tried"] += 1
            stats["payout_tried"] += 1
            status, data = await self.request(
                session, "POST", "/api/v1/payouts/", creator["token"], {}, key
            )
            if status is None:
                stats["ops_gave_up"] += 1
                self.gave_up_keys.add(key)
            elif status == 201:
                stats["ops_succeeded"] += 1
                stats["payout_succeeded"] += 1
                self.acknowledge("payout", key, creator, data)
            else:
                stats["ops_refused"] += 1
                stats[f"refused_{status}"] += 1
                code = ((data or {}).get("error") or {}).get("code", "")
                if code not in ("payout_open", "below_minimum", "insufficient_funds"):
                    problems.append(f"instant payout {key}: unexpected {status} {code}")

    def acknowledged_check(self) -> None:
        """Every acknowledged gift, recharge credit, refund and payout is in the ledger exactly
        once; nothing is in the ledger that no client was told about, except what a client
        that gave up (outcome unknown to it) had asked for."""
        from accounts.models import IdempotencyRecord
        from gifts.models import GiftEvent
        from payouts.models import Payout, PayoutStatus
        from wallets.models import LedgerTransaction, Recharge, RechargeRefund, TransactionKind

        fresh_connections()
        acked: dict[str, dict] = {op: {} for op in ("gift", "recharge", "refund", "payout")}
        for key, (op, _user_id, data) in self.acked.items():
            acked[op][key] = data
        stats.update({f"acked_{op}s": len(v) for op, v in acked.items()})
        stats["acked_found_by_retry"] = len(self.found_by_retry & set(self.acked))
        missing: list[str] = []
        unknown: Counter = Counter()

        def told(op: str, key: str | None, what: str) -> None:
            if key in self.gave_up_keys:
                unknown[op] += 1  # the client gave up: it was never told, nor could be
            elif op == "recharge" and key is None:
                # A crash rolled back the recharge after Stripe had charged it, the client's
                # retry found nothing and bought afresh, reconciliation rebuilt the first from
                # the PaymentIntent: charged and credited twice for one request. Found by this
                # run (seed 4242) before #17's phased recharges, which commit the recharge
                # (with its key) before Stripe is called, so it should no longer happen;
                # flagged in the full run, only noted in the quick one inside make test.
                stats["charged_twice_rebuilt"] += 1
                (notes if QUICK else missing).append(
                    f"{what} was rebuilt by reconciliation; no client was told about it "
                    "(its buyer was charged twice for one request)"
                )
            else:
                missing.append(f"{what} is in the ledger but no client was told about it")

        def keyed(path_like: str) -> dict[int, str]:
            rows = IdempotencyRecord.objects.filter(response_status=201, path__regex=path_like)
            return {
                int(body["id"] if "id" in body else body["refund"]["id"]): key
                for key, body in rows.values_list("key", "response_body")
            }

        # Gifts: the event, its one ledger transaction, the coins the client was told.
        events = dict(GiftEvent.objects.values_list("pk", "coins"))
        for data in acked["gift"].values():
            if events.get(data["id"]) != data["coins_spent"]:
                missing.append(
                    f"gift {data['id']} acknowledged ({data['coins_spent']} coins) "
                    f"but the ledger has {events.get(data['id'])}"
                )
        gift_txns = LedgerTransaction.objects.filter(kind=TransactionKind.GIFT).count()
        if gift_txns != len(events):
            missing.append(f"{gift_txns} gift transactions for {len(events)} gift events")
        told_gifts = {d["id"] for d in acked["gift"].values()}
        gift_keys = keyed(r"^/api/v1/gifts/send/$")
        for event_id in set(events) - told_gifts:
            told("gift", gift_keys.get(event_id), f"gift {event_id}")
        # Recharge credits: one per credited recharge, and only for a recharge a client was
        # answered 201 about (the bank's clients, or the webhook phase's).
        credits = Counter(
            LedgerTransaction.objects.filter(kind=TransactionKind.RECHARGE).values_list(
                "reference", flat=True
            )
        )
        for ref, n in credits.items():
            if n != 1:
                missing.append(f"{ref}: {n} recharge credits")
        for data in acked["recharge"].values():
            if data.get("status") == "succeeded" and credits[f"recharge:{data['id']}"] != 1:
                n = credits[f"recharge:{data['id']}"]
                missing.append(f"recharge {data['id']} acknowledged as paid, {n} credits")
        told_recharges = {d["id"] for d in acked["recharge"].values()}
        webhook_intents = set(getattr(self, "webhook_result", ([], [], 0))[0])
        credited_ids = {int(ref.split(":", 1)[1]) for ref in credits}
        for pk, key, intent in Recharge.objects.filter(pk__in=credited_ids).values_list(
            "pk", "client_key", "payment_intent"
        ):
            if pk not in told_recharges and intent not in webhook_intents:
                told("recharge", key, f"the credit of recharge {pk}")
        # Refunds: the client's refund row and its one ledger debit.
        refund_keys = set(
            LedgerTransaction.objects.filter(
                idempotency_key__startswith="refund:self:"
            ).values_list("idempotency_key", flat=True)
        )
        refunds = dict(
            RechargeRefund.objects.filter(source="self", status="succeeded").values_list(
                "pk", "recharge_id"
            )
        )
        # A failed one (Stripe refused it) gave its coins back; none is left requested after
        # the finisher.
        reversed_keys = set(
            LedgerTransaction.objects.filter(
                idempotency_key__startswith="refund-failed:self:"
            ).values_list("idempotency_key", flat=True)
        )
        left = RechargeRefund.objects.filter(source="self").exclude(status="succeeded")
        for pk, state in left.values_list("pk", "status"):
            if state != "failed" or f"refund-failed:self:{pk}" not in reversed_keys:
                missing.append(f"self refund {pk} is {state} after the finisher")
        for data in acked["refund"].values():
            recharge_id = data["recharge"]["id"]
            if refunds.get(data["refund"]["id"]) != recharge_id or (
                f"refund:self:{recharge_id}" not in refund_keys
            ):
                missing.append(f"refund of recharge {recharge_id} acknowledged, not in the ledger")
        told_refunds = {d["refund"]["id"] for d in acked["refund"].values()}
        # A self refund's row carries its request's key from its first phase (committed before
        # Stripe is asked), whoever finished it (the retry, the finisher, reconciliation or the
        # webhook): "self:<user id>:<the client's Idempotency-Key>".
        refund_request_keys = {
            pk: (request_key or "").split(":", 2)[-1] or None
            for pk, request_key in RechargeRefund.objects.filter(source="self").values_list(
                "pk", "request_key"
            )
        }
        for pk in set(refunds) - told_refunds:
            told("refund", refund_request_keys.get(pk), f"self refund {pk}")
        # Instant payouts: created once in the ledger, and paid once when paid.
        payout_keys = set(
            LedgerTransaction.objects.filter(idempotency_key__startswith="payout-").values_list(
                "idempotency_key", flat=True
            )
        )
        payouts = dict(Payout.objects.filter(is_instant=True).values_list("pk", "status"))
        for data in acked["payout"].values():
            pk = data["id"]
            if pk not in payouts or f"payout-created:{pk}" not in payout_keys:
                missing.append(f"instant payout {pk} acknowledged, not in the ledger")
            elif payouts[pk] == PayoutStatus.PAID and f"payout-paid:{pk}" not in payout_keys:
                missing.append(f"instant payout {pk} paid, its payment not in the ledger")
        told_payouts = {d["id"] for d in acked["payout"].values()}
        payout_request_keys = keyed(r"^/api/v1/payouts/$")
        for pk in set(payouts) - told_payouts:
            told("payout", payout_request_keys.get(pk), f"instant payout {pk}")
        stats["in_ledger_client_gave_up"] = sum(unknown.values())
        stats["acked_missing"] = sum(1 for m in missing if "acknowledged" in m)
        if faults["pg_crash_immediate"] + faults["pg_crash_kill"]:
            notes.append(f"answers while PostgreSQL was down: {dict(self.during_pg_down)}")
        problems.extend(missing[:50])
        if len(missing) > 50:
            problems.append(f"... and {len(missing) - 50} more acknowledgement mismatches")

    # ---- Stripe away (issue 17): localstripe stopped while recharges and reconcile run
    def stripe_env(self) -> dict[str, str]:
        return {
            "STRIPE_API_BASE": self.stripe.url,
            "STRIPE_JS_URL": f"{self.stripe.url}/js.stripe.com/v3/",
            # A Stripe that stops answering costs a web thread this long per call (and the
            # purchases after it are refused at once for a few seconds).
            "STRIPE_TIMEOUT": "4",
            "STRIPE_MAX_NETWORK_RETRIES": "1",
            # Reconciliation during the run finishes what clients left half-made.
            "RECHARGE_ABANDONED_AFTER_SECONDS": "60",
        }

    def stripe_away_loop(self) -> None:
        """Its own schedule beside fault_loop's: STRIPE_OUTAGES times, localstripe stopped
        for 20-30 s (12-16 s in the quick run) while the clients buy coins and a reconciliation
        runs."""
        started = time.monotonic()
        # The quick run's outage comes after its first forced faults and ends with its bank
        # test.
        window = (0.3, 0.5) if QUICK else (0.1, 0.8)
        schedule = sorted(rng.uniform(*window) * CFG["bank_seconds"] for _ in range(STRIPE_OUTAGES))
        for at in schedule:
            if self.stop_faults.wait(max(0.0, at - (time.monotonic() - started))):
                return
            try:
                # Not under self.lock: the other faults go on meanwhile (a web kill or a
                # database restart while Stripe is away is a day like any other).
                self.stripe_away()
            except Exception as exc:
                problems.append(f"fault stripe_away could not be injected or recovered: {exc}")
                log(traceback.format_exc())

    def stripe_away(self) -> None:
        # The quick run (inside make test) has a 45 s bank test: a shorter outage there.
        seconds = rng.uniform(12.0, 16.0) if QUICK else rng.uniform(20.0, 30.0)
        log(f"fault: stripe_away ({seconds:.0f} s)")
        faults["stripe_away"] += 1
        self.stripe.pause()
        self.stripe_down = True
        reconcile = threading.Thread(target=self.reconcile_now, args=("during",), daemon=True)
        try:
            time.sleep(rng.uniform(2.0, 5.0))
            reconcile.start()
            time.sleep(seconds)
        finally:
            self.stripe_down = False
            self.stripe.resume()
        reconcile.join(timeout=120)
        self.reconcile_now("after")

    def reconcile_now(self, when: str) -> None:
        try:
            self.manage("reconcile", quiet=True)
            stats[f"stripe_away_reconcile_{when}"] += 1
        except Exception as exc:  # the run is recorded as failed; that is the point
            stats[f"stripe_away_reconcile_{when}_failed"] += 1
            log(f"reconcile {when} Stripe away: {type(exc).__name__}")

    def stripe_away_note(self, path: str, status: int, data, retry_after, sent_away: bool) -> None:
        """A recharge sent or answered while Stripe was away (one sent during the outage may
        be answered after it, when Stripe got to it)."""
        if not (sent_away or self.stripe_down) or not REFUND_OR_RECHARGE.match(path):
            return
        code = ((data or {}).get("error") or {}).get("code", "") if status >= 400 else ""
        self.during_stripe_away[f"{status} {code}".strip()] += 1
        if code == "payment_provider_unavailable" and not (retry_after or "").isdigit():
            problems.append("Stripe away: a 503 payment_provider_unavailable without Retry-After")
        if status in (500, 502):
            # Stripe unreachable is never a server error nor "the provider refused".
            problems.append(f"Stripe away: {path} answered {status} {code}")

    def finish_abandoned(self) -> None:
        """Before the final checks: every recharge the clients left half-made (they gave up,
        or retried into the end of the run) is finished, as the beat would."""
        from datetime import timedelta

        from wallets.services import recharges_finish_abandoned, self_refunds_finish_abandoned

        fresh_connections()
        for outcome, n in recharges_finish_abandoned(
            older_than=timedelta(0), limit=100_000
        ).items():
            stats[f"finished_{outcome}"] += n
        for outcome, n in self_refunds_finish_abandoned(
            older_than=timedelta(0), limit=100_000
        ).items():
            stats[f"finished_self_refund_{outcome}"] += n

    def stripe_away_check(self) -> None:
        from wallets.models import Recharge, RechargeStatus, ReconciliationRun

        left = Recharge.objects.filter(status=RechargeStatus.CREATING).count()
        if left:
            problems.append(f"{left} recharges still creating after the finisher")
        for run in ReconciliationRun.objects.filter(kind="payments"):
            for name, n in (run.counts or {}).items():
                if name.startswith("abandoned_"):
                    stats[f"finished_{name.removeprefix('abandoned_')}"] += n
        if not faults["stripe_away"]:
            return
        answers = dict(self.during_stripe_away)
        notes.append(f"recharge and self refund answers while Stripe was away: {answers}")
        if not self.during_stripe_away["503 payment_provider_unavailable"]:
            message = "Stripe away: no recharge was answered 503 payment_provider_unavailable"
            # The quick run's one short outage may see no recharge time out in it.
            (notes if QUICK else problems).append(message)

    # ---- teardown
    def teardown(self) -> None:
        for proc in (*self.webs, *self.workers):
            proc.kill()
        if self.bouncer is not None:
            self.bouncer.close(keep_log=WORK / "pgbouncer.log")  # kept with the run's logs
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if not self.redis.ping():
            self.redis.start()
        try:
            self.pg.psql(f'DROP DATABASE IF EXISTS "{self.pg.db}" WITH (FORCE)')
        except Exception as exc:
            log(f"could not drop {self.pg.db}: {exc}")
        if self.redis.private:
            self.redis.stop()
        else:
            self.redis.flush(self.redis.cache_db, self.redis.broker_db)
        self.pg.stop_private()
        if self.connect is not None:
            self.connect.stop()
        self.stripe.stop()


def fresh_connections() -> None:
    """Our own ORM connections may predate a database restart: start over."""
    from django.db import connections

    connections.close_all()


def retry_pause(attempt: int, retry_after: str | None) -> float:
    """How long a client waits before retrying a 5xx: Retry-After when given (capped, so the
    clients keep the load up), else a short backoff."""
    if retry_after and retry_after.isdigit():
        return min(float(retry_after), 3.0) * rng.uniform(0.5, 1.0)
    return min(2.0, 0.1 * (attempt + 1))


PHASES = ("started", "intent_created", "finished")
REFUND_PHASES = ("requested", "finished")


def recoveries_by_phase(what: str = "recharge", phases: tuple[str, ...] = PHASES) -> dict[str, int]:
    """From the web server's log: retries that found their recharge (or self refund) half-made,
    by the recovery point they continued from (wallets/services/purchase.py, self_refund.py)."""
    text = "".join(path.read_text(errors="replace") for path in sorted(WORK.glob("web*.log")))
    return {
        phase: len(re.findall(rf"{what} [0-9]+: continuing from {phase}\b", text))
        for phase in phases
    }


def finished_by_phase() -> str:
    """What the finisher of abandoned recharges did (reconcile runs and the final pass)."""
    return (
        ", ".join(
            f"{k.removeprefix('finished_')} {v}"
            for k, v in sorted(stats.items())
            if k.startswith("finished_")
        )
        or "none"
    )


def crash_rows() -> list[tuple[str, object]]:
    """Issue 23's lines of the summary: the crashes and the acknowledged answers."""
    return [
        (
            "PostgreSQL crashes: immediate / SIGKILL",
            f"{faults['pg_crash_immediate']} / {faults['pg_crash_kill']} "
            f"(slowest start with crash recovery {stats['pg_recovery_ms_max'] / 1000:.1f} s; "
            f"clean restarts {faults['pg_restart']})",
        ),
        (
            "acknowledged: gifts / recharges / refunds / payouts",
            "{} / {} / {} / {}".format(
                stats["acked_gifts"],
                stats["acked_recharges"],
                stats["acked_refunds"],
                stats["acked_payouts"],
            ),
        ),
        (
            "  in the ledger exactly once / not",
            f"{len_acked() - stats['acked_missing']} / {stats['acked_missing']}",
        ),
        ("  answered only by a same-key retry", stats["acked_found_by_retry"]),
        ("paid under a customer row a crash undid", stats["paid_under_rolled_back_customer"]),
        ("in the ledger, client gave up (never told)", stats["in_ledger_client_gave_up"]),
    ]


def len_acked() -> int:
    return sum(stats[f"acked_{op}s"] for op in ("gift", "recharge", "refund", "payout"))


def summary(elapsed: float) -> int:
    discrepancies = len(problems)
    faults_total = sum(faults.values())
    print()
    print("=" * 72)
    print(f"chaos summary ({'quick' if QUICK else 'full'} run, seed {SEED}, {elapsed:.0f} s)")
    print("=" * 72)
    rows = [
        ("operations tried", stats["ops_tried"]),
        ("  succeeded", stats["ops_succeeded"]),
        ("  refused (4xx)", stats["ops_refused"]),
        ("  gave up (outcome unknown to the client)", stats["ops_gave_up"]),
        (
            "  recharges / gifts / reads tried",
            "{} / {} / {}".format(
                stats["recharge_tried"], stats["gift_tried"], stats["read_tried"]
            ),
        ),
        ("operations that needed retries", stats["retried_ops"]),
        ("client timeouts (gave up mid-request)", stats["client_timeouts"]),
        (
            "connection errors / 5xx seen",
            "{} / {}".format(
                stats["connection_errors"],
                sum(v for k, v in stats.items() if k.startswith("http_5")),
            ),
        ),
        ("faults injected", f"{faults_total} " + str(dict(faults))),
        (
            "web servers / Celery workers / through PgBouncer",
            f"{SERVERS} / {WORKERS} / {PGBOUNCER_MODE or 'no'} "
            f"(PgBouncer restarts {faults['pgbouncer_restart']})",
        ),
        ("payments succeeded at Stripe", stats["payments_succeeded_at_stripe"]),
        (
            "recharge retries continued, by phase",
            ", ".join(f"{k} {v}" for k, v in recoveries_by_phase().items()),
        ),
        ("abandoned recharges / self refunds finished", finished_by_phase()),
        ("settle: reconciliations run again (Stripe timed out)", stats["settle_reconcile_retries"]),
        (
            "self refund retries continued, by phase",
            ", ".join(
                f"{k} {v}" for k, v in recoveries_by_phase("self refund", REFUND_PHASES).items()
            ),
        ),
        ("coins recharged / spent", f"{stats['coins_recharged']} / {stats['coins_spent']}"),
        ("payouts paid (diamonds)", f"{stats['payouts_paid']} ({stats['diamonds_paid_out']})"),
        ("discrepancies", discrepancies),
    ]
    rows[-1:-1] = crash_rows()
    for name, value in rows:
        print(f"{name:<44} {value}")
    for note in notes:
        print(f"note: {note}")
    for problem in problems[:50]:
        print(f"DISCREPANCY: {problem}")
    print(
        f"CHAOS ops_tried={stats['ops_tried']} ops_succeeded={stats['ops_succeeded']} "
        f"ops_refused={stats['ops_refused']} ops_gave_up={stats['ops_gave_up']} "
        f"faults={faults_total} web_kills={faults['web_worker'] + faults['web_all']} "
        f"worker_kills={faults['worker']} pg_restarts={faults['pg_restart']} "
        f"pg_crashes={faults['pg_crash_immediate'] + faults['pg_crash_kill']} "
        f"acked={len_acked()} acked_missing={stats['acked_missing']} "
        f"redis_outages={faults['redis_down']} stripe_outages={faults['stripe_away']} "
        f"pgbouncer={PGBOUNCER_MODE or 0} pgbouncer_restarts={faults['pgbouncer_restart']} "
        f"web_servers={SERVERS} "
        f"celery_workers={WORKERS} "
        f"discrepancies={discrepancies}",
        flush=True,
    )
    return 0 if discrepancies == 0 and faults_total > 0 else 1


def main() -> int:
    started = time.monotonic()
    chaos = Chaos()
    rc = 1
    try:
        chaos.setup()
        chaos.durability_check()
        log(f"bank test: {CFG['clients']} clients for {CFG['bank_seconds']} s on {chaos.base}")
        if NO_FAULTS:
            log("CHAOS_FAULTS=0: no faults (a measurement of the fault-free op rate)")
        fault_thread = threading.Thread(target=chaos.fault_loop, daemon=True)
        payout_thread = threading.Thread(target=chaos.payout_loop, daemon=True)
        crash_thread = threading.Thread(target=chaos.pg_crash_loop, daemon=True)
        stripe_thread = threading.Thread(target=chaos.stripe_away_loop, daemon=True)
        if not NO_FAULTS:
            fault_thread.start()
            crash_thread.start()
            stripe_thread.start()
        payout_thread.start()
        asyncio.run(chaos.bank())
        chaos.stop_faults.set()
        for thread, seconds in ((fault_thread, 120), (crash_thread, 180), (stripe_thread, 120)):
            if thread.is_alive():
                thread.join(timeout=seconds)
        chaos.stop_payouts.set()
        payout_thread.join(timeout=120)
        log("webhook test")
        asyncio.run(chaos.webhooks())
        # Each step's failure is the run's failure, and the checks after it still run (a
        # settle that failed must not hide what the clients were told).
        for step in (
            chaos.webhooks_check,
            chaos.finish_abandoned,
            chaos.settle,
            chaos.check,
            chaos.acknowledged_check,
            chaos.redis_check,
            chaos.stripe_away_check,
        ):
            if step == chaos.finish_abandoned:
                log("settling: reconcile, release, pay out")
            try:
                step()
            except Exception:
                problems.append(f"{step.__name__} failed: " + traceback.format_exc(limit=5))
                log(traceback.format_exc())
    except Exception:
        problems.append("the run itself failed: " + traceback.format_exc(limit=5))
        log(traceback.format_exc())
    finally:
        for path in sorted([*WORK.glob("web*.log"), *WORK.glob("worker*.log")]):
            name = path.stem
            if problems:
                tail = path.read_text(errors="replace").splitlines()[-15:]
                log(f"last lines of {name}.log:\n" + "\n".join(tail))
        chaos.teardown()
        rc = summary(time.monotonic() - started)
        if rc == 0 and not os.environ.get("CHAOS_KEEP"):
            shutil.rmtree(WORK, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
