#!/usr/bin/env python
"""``make bench``: every benchmark of issue 9 in one run, so the ratios between them are fair.

Run it through ``scripts/with_services.sh`` (``make bench``): it needs ``DATABASE_URL`` (a
PostgreSQL server; the benchmark creates and drops its own ``bench_<pid>`` database there),
and uses ``REDIS_URL`` (cache, throttles, a private Celery broker database) when set.

1. ``db_ceiling_tx_per_s``: pgbench, 16 clients, a custom script with a gift's SQL shape.
2. ``hot_gifts_per_s`` / ``spread_gifts_per_s``: ``gifts.services.gift_send`` from 16 processes.
3. ``http_gifts_per_s`` / ``http_p99_ms``: ``POST /api/v1/gifts/send/`` through gunicorn +
   threaded workers (config/gunicorn.conf.py, as ``make serve``), 32 closed-loop clients.
4. ``payout_batch_100k_s``, ``release_earnings_2m_s`` (bench/bulk.py): the payout batch and the
   earnings release over 100k creators and 2M gifts seeded in SQL, on a durable PostgreSQL.
5. ``reconcile_10k_s``: ``wallets.services.payments_reconcile`` over a recorded listing.

Prints a table and, last, ``RESULT key=value ...``; writes the same to BENCHMARKS.md (between
the generated-section markers, keeping the hand-written analysis). ``BENCH_QUICK=1`` runs a
seconds-long smoke version with tiny sizes and leaves BENCHMARKS.md alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import multiprocessing as mp
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.append(str(REPO / "bench"))
import gift_bench  # noqa: E402  (bench/gift_bench.py: the gift benchmarks of issue #15)

from bench.bulk import KEYS as BULK_KEYS  # noqa: E402
from bench.bulk import TARGETS as BULK_TARGETS  # noqa: E402
from bench.renewals import KEYS as RENEWAL_KEYS  # noqa: E402
from bench.renewals import TARGETS as RENEWAL_TARGETS  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
BEGIN_MARK = "<!-- bench:generated:begin -->"
END_MARK = "<!-- bench:generated:end -->"

if QUICK:
    CFG = dict(
        pgbench_s=2,
        gift_warmup_s=0.5,
        gift_s=1.5,
        http_warmup_s=1,
        http_s=2,
        http_clients=32,
        workers=16,
        senders_per_worker=2,
        creators=20,
        http_senders=32,
        reconcile=200,
        reconcile_stripe=100,
        profile_calls=20,
        pyspy_s=0,
    )
else:
    CFG = dict(
        pgbench_s=15,
        gift_warmup_s=3,
        gift_s=15,
        http_warmup_s=5,
        http_s=30,
        http_clients=32,
        workers=16,
        senders_per_worker=8,
        creators=1000,
        http_senders=32,
        reconcile=10_000,
        reconcile_stripe=500,  # localstripe lists in O(n²): 2,000 timed out (BENCHMARKS.md)
        profile_calls=200,
        pyspy_s=10,
    )

KEYS = [
    "db_ceiling_tx_per_s",
    "db_ceiling_gift_fn_tx_per_s",
    "db_ceiling_gift_fn_async_commit_tx_per_s",
    "hot_gifts_per_s",
    "spread_gifts_per_s",
    "hot_spread_ratio",
    "service_vs_ceiling",
    "ledger_ok",
    "http_gifts_per_s",
    "http_p99_ms",
    "http_errors",
    "web_peak_rss_mb",
    "granian_http_gifts_per_s",
    "granian_http_p99_ms",
    "granian_http_errors",
    "two_servers_gifts_per_s",
    "two_servers_totals_ok",
    "pgbouncer_http_gifts_per_s",
    "pgbouncer_http_p99_ms",
    "pgbouncer_http_errors",
    "one_sender_8conn_gifts_per_s",
    "one_sender_double_spend",
    "payout_batch_100k_s",
    "reconcile_10k_s",
    "reconcile_rerun_10k_s",
    "reconcile_stripe_s",
]
TARGETS = {
    "hot_spread_ratio": (">=", 0.9),
    "service_vs_ceiling": (">=", 0.5),
    "http_gifts_per_s": (">=", 400),
    "http_p99_ms": ("<=", 100),
    "http_errors": ("<=", 0),
    "payout_batch_100k_s": ("<=", 30),
    "reconcile_10k_s": ("<=", 5),
    "reconcile_rerun_10k_s": ("<=", 1),
    "ledger_ok": (">=", 1),
    "two_servers_totals_ok": (">=", 1),
    "one_sender_double_spend": ("<=", 0),
    "pgbouncer_http_errors": ("<=", 0),
    "granian_http_errors": ("<=", 0),
}
KEYS += [key for key in BULK_KEYS if key not in KEYS]
TARGETS.update(BULK_TARGETS)
KEYS += RENEWAL_KEYS
TARGETS.update(RENEWAL_TARGETS)
GIFT_SLUG = "bench-rose"

results: dict[str, object] = {}
notes: list[str] = []  # one line each, shown under the table
sections: dict[str, str] = {}  # profile sections (markdown)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def na(*keys: str, why: str) -> None:
    for key in keys:
        results[key] = "n/a"
    notes.append(f"{', '.join(keys)}: n/a ({why})")


# ---------------------------------------------------------------------------------- database


def pg_params(url: str) -> dict:
    parts = urllib.parse.urlsplit(url)
    return dict(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=urllib.parse.unquote(parts.username or "postgres"),
        password=urllib.parse.unquote(parts.password or ""),
        dbname=parts.path.lstrip("/") or "postgres",
    )


def url_with_db(url: str, dbname: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


def admin_sql(base_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(**pg_params(base_url), autocommit=True) as conn:
        conn.execute(sql)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------- CPU time
# The machine may be shared (load averages are recorded): CPU seconds per operation do not
# depend on how busy it is, so they say what an idle 2-core machine would reach.

CPU: dict[str, float] = {}  # name -> CPU ms per operation


def proc_cpu_s(pid: int, reaped: bool = False) -> float:
    """utime + stime of ``pid`` (plus, with ``reaped``, of its children that have exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


_POSTMASTER: list[int] = []


def pg_cpu_s() -> float:
    """CPU seconds of every process of our PostgreSQL server (backends and helpers), including
    the ones that have exited (the postmaster reaps them: its children's time).

    One consistent snapshot: a backend that exits while ``/proc`` is scanned (clients closing
    their connections at the end of a window, as the gift_send workers do) would otherwise be
    in neither the postmaster's reaped time (read before it exited) nor the scan (gone by
    then), and its whole CPU time would vanish from the total: that made the gift_send step's
    PostgreSQL CPU per gift negative. So the reaped time is read before and after the scan,
    and the scan is repeated until no child was reaped meanwhile."""
    if not _POSTMASTER:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            _POSTMASTER.append(_ppid(cursor.fetchone()[0]))
    master = _POSTMASTER[0]
    total = 0.0
    for _attempt in range(50):
        reaped = proc_cpu_s(master, reaped=True)
        total = reaped
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _ppid(int(entry.name)) == master:
                total += proc_cpu_s(int(entry.name))
        if proc_cpu_s(master, reaped=True) == reaped:
            return total
    return total  # children kept exiting all along (never seen): the last scan


def children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class WaitSampler:
    """What the bench database's active backends wait on, sampled from ``pg_stat_activity``
    every ``interval`` seconds by a thread with a connection of its own (issue #15, item 5: a
    hot row shows as ``Lock`` / ``LWLock:MultiXact*`` waits, a CPU-bound server as none)."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WaitSampler:
        import psycopg
        from django.db import connection

        params = connection.get_connection_params()
        conn = psycopg.connect(
            **{k: v for k, v in params.items() if k in ("host", "port", "user", "password")},
            dbname=connection.settings_dict["NAME"],
            autocommit=True,
        )

        def sample() -> None:
            with conn:
                while not self._stop.wait(self.interval):
                    rows = conn.execute(
                        "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*) "
                        "FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state = 'active' AND pid <> pg_backend_pid() GROUP BY 1"
                    ).fetchall()
                    self.samples += 1
                    for event, n in rows:
                        self.counts[event] = self.counts.get(event, 0) + n

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def top(self, n: int = 4) -> str:
        """The commonest states as the mean number of active backends in each."""
        if not self.samples:
            return "no samples"
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])[:n]
        return ", ".join(f"{event} {count / self.samples:.1f}" for event, count in ranked)


def self_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------- 1. pgbench

PGBENCH_SETUP = """
DROP TABLE IF EXISTS bench_wallet, bench_entry, bench_event;
CREATE TABLE bench_wallet (
    id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
INSERT INTO bench_wallet SELECT g, 1000000000 FROM generate_series(1, 10000) g;
CREATE TABLE bench_entry (
    id bigserial PRIMARY KEY, transaction_id bigint NOT NULL, account_id bigint NOT NULL,
    amount bigint NOT NULL, balance_after bigint, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON bench_entry (transaction_id);
CREATE INDEX ON bench_entry (account_id);
CREATE INDEX ON bench_entry (account_id, id DESC);
CREATE INDEX ON bench_entry (account_id, created_at) INCLUDE (amount);
CREATE TABLE bench_event (
    id bigserial PRIMARY KEY, sender_id bigint NOT NULL, creator_id bigint NOT NULL,
    coins bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON bench_event (sender_id);
CREATE INDEX ON bench_event (creator_id, created_at DESC);
CREATE INDEX ON bench_event (sender_id, created_at DESC);
VACUUM ANALYZE bench_wallet;
"""

# The gift's shape: the sender's conditional debit (a cold row), the four ledger entries of the
# two-unit transaction (the creator's and platform credits are appended, never updated), and
# the gift event row. Each statement is its own round trip, as from Django.
PGBENCH_SCRIPT = r"""
\set sender random(1, 10000)
\set creator random(1, 1000)
\set tx random(1, 1000000000)
BEGIN;
UPDATE bench_wallet SET balance = balance - 1 WHERE id = :sender AND balance - 1 >= 0 RETURNING balance;
INSERT INTO bench_entry (transaction_id, account_id, amount, balance_after) VALUES (:tx, :sender, -1, 0), (:tx, 20001, 1, NULL), (:tx, 20002, -1, NULL), (:tx, 10000 + :creator, 1, NULL);
INSERT INTO bench_event (sender_id, creator_id, coins) VALUES (:sender, :creator, 1);
COMMIT;
"""


def bench_pgbench(db_url: str, workdir: Path) -> None:
    import psycopg

    params = pg_params(db_url)
    with psycopg.connect(**params, autocommit=True) as conn:
        for statement in PGBENCH_SETUP.strip().split(";\n"):
            if statement.strip():
                conn.execute(statement)
    script = workdir / "gift.sql"
    script.write_text(PGBENCH_SCRIPT)
    cmd = [
        str(PG_BIN / "pgbench"), "-n", "-c", "16", "-j", "2", "-T", str(CFG["pgbench_s"]),
        "-f", str(script), "-h", params["host"], "-p", str(params["port"]),
        "-U", params["user"], params["dbname"],
    ]  # fmt: skip
    env = dict(os.environ, PGPASSWORD=params["password"])
    log(f"pgbench: 16 clients, {CFG['pgbench_s']} s")
    pg_before, child_before = pg_cpu_s(), children_cpu_s()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    pg_used, client_used = pg_cpu_s() - pg_before, children_cpu_s() - child_before
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
    if out.returncode != 0 or not match:
        raise RuntimeError(f"pgbench failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    latency = re.search(r"latency average = ([0-9.]+) ms", out.stdout)
    results["db_ceiling_tx_per_s"] = round(float(match.group(1)))
    done = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    if done and int(done.group(1)):
        n = int(done.group(1))
        CPU["pgbench_pg"] = pg_used / n * 1000
        CPU["pgbench_client"] = client_used / n * 1000
    if latency:
        notes.append(f"pgbench latency average {latency.group(1)} ms at 16 clients")
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_wallet, bench_entry, bench_event")


# ---------------------------------------------------------------------------------- seeding


def seed_gift_world(n_senders: int, n_creators: int):
    """Senders with plenty of coins (through the grant service), creators (through the
    creator service), and one 1-coin gift."""
    from accounts.models import User
    from creators.services import creator_create
    from gifts.models import Gift
    from wallets.services import wallet_adjust

    Gift.objects.get_or_create(slug=GIFT_SLUG, defaults=dict(name="Bench Rose", coins=1))
    born = dt.date(1990, 1, 1)
    senders = User.objects.bulk_create(
        [User(username=f"bench-s{i}", date_of_birth=born, password="!") for i in range(n_senders)]
    )
    staff = User.objects.create(username="bench-staff", is_staff=True, password="!")
    for user in senders:
        wallet_adjust(user=user, coins=1_000_000, reason="bench", actor=staff)
    owners = User.objects.bulk_create(
        [User(username=f"bench-c{i}", date_of_birth=born, password="!") for i in range(n_creators)]
    )
    handles = []
    for i, user in enumerate(owners):
        creator = creator_create(user=user, handle=f"bench-c{i}", display_name=f"Creator {i}")
        handles.append(creator.handle)
    return senders, handles


# ---------------------------------------------------------------------------------- 2. gift_send


def gift_worker(idx, sender_ids, handles, hot, t_start, t_measure, t_end, queue) -> None:
    from django.db import connection

    from accounts.models import User
    from gifts.services import gift_send

    try:
        senders = list(User.objects.filter(pk__in=sender_ids).order_by("pk"))
        rng = random.Random(idx)
        tag = "h" if hot else "s"
        ok = errors = calls = 0
        latencies: list[float] = []
        samples: list[str] = []
        for n in range(3):  # imports, connection, first compiled queries: not measured
            gift_send(
                sender=senders[n % len(senders)],
                creator_handle=handles[0],
                gift_slug=GIFT_SLUG,
                client_key=f"w{tag}{idx}-{n}",
            )
        while time.time() < t_start:
            time.sleep(0.002)
        cpu_at_measure = None
        while True:
            started = time.time()
            if started >= t_end:
                break
            if cpu_at_measure is None and started >= t_measure:
                cpu_at_measure = self_cpu_s()
            sender = senders[calls % len(senders)]
            handle = handles[0] if hot else rng.choice(handles)
            try:
                gift_send(
                    sender=sender,
                    creator_handle=handle,
                    gift_slug=GIFT_SLUG,
                    client_key=f"{tag}{idx}-{calls}",
                )
                finished = time.time()
                if started >= t_measure and finished <= t_end:
                    ok += 1
                    latencies.append(finished - started)
            except Exception as exc:  # counted and reported, never hidden
                errors += 1
                if len(samples) < 3:
                    samples.append(repr(exc)[:200])
            calls += 1
        cpu = self_cpu_s() - cpu_at_measure if cpu_at_measure is not None else 0.0
        connection.close()
        queue.put(
            dict(
                idx=idx, ok=ok, errors=errors, calls=calls, lat=latencies, samples=samples, cpu=cpu
            )
        )
    except Exception:
        queue.put(
            dict(idx=idx, ok=0, errors=1, calls=0, lat=[], samples=[traceback.format_exc()], cpu=0)
        )


def run_gift_phase(senders, handles, *, hot: bool, seconds: float) -> dict:
    from django.db import connections

    connections.close_all()  # children must not share the parent's socket
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    n = CFG["workers"]
    per = CFG["senders_per_worker"]
    t_start = time.time() + (0.5 if QUICK else 2.0)
    t_measure = t_start + CFG["gift_warmup_s"]
    t_end = t_measure + seconds
    procs = []
    for i in range(n):
        ids = [u.pk for u in senders[i * per : (i + 1) * per]]
        procs.append(
            ctx.Process(
                target=gift_worker, args=(i, ids, handles, hot, t_start, t_measure, t_end, queue)
            )
        )
    for proc in procs:
        proc.start()
    pg_cpu_s()  # find the server before the window
    while time.time() < t_measure:
        time.sleep(0.005)
    pg_at_measure = pg_cpu_s()
    with WaitSampler() as waits:
        while time.time() < t_end:
            time.sleep(0.005)
    pg_used = pg_cpu_s() - pg_at_measure
    outs = [queue.get(timeout=CFG["gift_warmup_s"] + seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    ok = sum(o["ok"] for o in outs)
    lat = sorted(x for o in outs for x in o["lat"])
    errors = sum(o["errors"] for o in outs)
    samples = [s for o in outs for s in o["samples"]][:3]

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None

    py_used = sum(o["cpu"] for o in outs)
    return dict(
        ok=ok,
        py_cpu=py_used,
        pg_cpu=pg_used,
        lat=lat,
        waits=waits.top(),
        py_cpu_ms=py_used / ok * 1000 if ok else 0.0,
        pg_cpu_ms=pg_used / ok * 1000 if ok else 0.0,
        per_s=ok / seconds,
        errors=errors,
        samples=samples,
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
    )


def _merge_phases(phases: list[dict], seconds: float) -> dict:
    ok = sum(p["ok"] for p in phases)
    lat = sorted(x for p in phases for x in p["lat"])

    def pct(q):
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else None

    return dict(
        per_s=ok / (seconds * len(phases)),
        rounds=[round(p["per_s"]) for p in phases],
        py_cpu_ms=sum(p["py_cpu"] for p in phases) / ok * 1000 if ok else 0.0,
        pg_cpu_ms=sum(p["pg_cpu"] for p in phases) / ok * 1000 if ok else 0.0,
        errors=sum(p["errors"] for p in phases),
        samples=[x for p in phases for x in p["samples"]][:3],
        waits=" / ".join(p["waits"] for p in phases),
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
    )


def bench_gifts(senders, handles) -> None:
    """Hot (every gift to one creator) against spread, in alternating rounds (hot, spread,
    hot, spread) so that neither gets the quieter half of the step: a single hot phase run
    first measured 0.78-0.96 of spread on the quiet machine, wider than the difference."""
    gift_pool = senders[: CFG["workers"] * CFG["senders_per_worker"]]
    rounds = 1 if QUICK else 2
    seconds = CFG["gift_s"] / rounds
    phases: dict[bool, list[dict]] = {True: [], False: []}
    for n in range(rounds):
        for is_hot in (True, False):
            what = "hot (1 creator)" if is_hot else f"spread ({len(handles)} creators)"
            log(
                f"gift_send round {n + 1}/{rounds}: {what}, {CFG['workers']} processes, {seconds} s"
            )
            phases[is_hot].append(run_gift_phase(gift_pool, handles, hot=is_hot, seconds=seconds))
    hot, spread = _merge_phases(phases[True], seconds), _merge_phases(phases[False], seconds)
    results["hot_gifts_per_s"] = round(hot["per_s"])
    results["spread_gifts_per_s"] = round(spread["per_s"])
    results["hot_spread_ratio"] = round(hot["per_s"] / spread["per_s"], 3) if spread["per_s"] else 0
    # Like for like (issue #15): against pgbench calling the very function a gift calls.
    ceiling = results.get("db_ceiling_gift_fn_tx_per_s")
    if isinstance(ceiling, (int, float)) and ceiling:
        results["service_vs_ceiling"] = round(spread["per_s"] / ceiling, 3)
    else:
        na("service_vs_ceiling", why="no gift function pgbench ceiling")
    CPU["gift_py"], CPU["gift_pg"] = spread["py_cpu_ms"], spread["pg_cpu_ms"]
    CPU["gift_hot_py"], CPU["gift_hot_pg"] = hot["py_cpu_ms"], hot["pg_cpu_ms"]
    for name, phase in (("hot", hot), ("spread", spread)):
        notes.append(
            f"gift_send {name}: p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms per call, "
            f"CPU per gift {phase['py_cpu_ms']:.2f} ms Python + {phase['pg_cpu_ms']:.2f} ms "
            "PostgreSQL, "
            f"{phase['errors']} errors"
            + (f" e.g. {phase['samples']}" if phase["errors"] else "")
            + f"; per round {phase['rounds']} gifts/s; mean active backends by wait (per "
            f"round): {phase['waits']}"
        )
    if hot["errors"] or spread["errors"]:
        notes.append("gift_send raised errors: the rates above exclude them")


def verify_ledger() -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    started = time.perf_counter()
    try:
        call_command("verify_ledger", stdout=out)
        results["ledger_ok"] = 1
    except CommandError as exc:
        results["ledger_ok"] = 0
        notes.append(f"verify_ledger FAILED: {exc}: {out.getvalue()[-1500:]}")
    notes.append(f"verify_ledger took {time.perf_counter() - started:.1f} s")


# ---------------------------------------------------------------------------------- profiles


class _Rollback(Exception):
    pass


def _timed_queries():
    """An execute wrapper that counts statements and the time spent waiting on them."""
    stats = {"n": 0, "s": 0.0}

    def wrapper(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            stats["s"] += time.perf_counter() - started
            stats["n"] += 1

    return stats, wrapper


def _pyinstrument_text(fn, calls: int) -> str:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return "(pyinstrument not installed: pip install -r requirements-dev.txt)"
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for i in range(calls):
        fn(i)
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)
    lines = [line for line in text.splitlines() if line.strip()]
    # Keep the call tree's upper part: enough to see where time goes.
    body = [line for line in lines if not line.startswith(("  _     ._", " /_//_/", "/   _/"))]
    return "\n".join(body[:70])


def _explain(statements: list[str]) -> str:
    from django.db import connection, transaction

    rows = []
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS, SUMMARY) " + sql)
                    plan = [r[0] for r in cursor.fetchall()]
                    top = plan[0].strip() if plan else ""
                    nodes = [p.strip().lstrip("-> ").strip() for p in plan if "->" in p]
                    exec_ms = next(
                        (
                            p.split(":", 1)[1].strip()
                            for p in plan
                            if p.startswith("Execution Time")
                        ),
                        "?",
                    )
                    short = " ".join(sql.split())
                    short = short[:110] + ("..." if len(short) > 110 else "")
                    first_node = nodes[0][:90] if nodes else top[:90]
                    rows.append(f"| `{short}` | {first_node} | {exec_ms} |")
            raise _Rollback
    except _Rollback:
        pass
    head = "| statement | plan (top node) | execution |\n|---|---|---|\n"
    return head + "\n".join(rows)


def profile_gift(senders, handles) -> None:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from gifts.services import gift_send

    sender = senders[-1]
    calls = CFG["profile_calls"]

    def one(i, tag="p"):
        gift_send(
            sender=sender,
            creator_handle=handles[i % len(handles)],
            gift_slug=GIFT_SLUG,
            client_key=f"{tag}-{i}",
        )

    for i in range(20):
        one(i, "pw")
    stats, wrapper = _timed_queries()
    started = time.perf_counter()
    with connection.execute_wrapper(wrapper):
        for i in range(calls):
            one(i, "pq")
    total = time.perf_counter() - started
    per_call_ms = total / calls * 1000
    db_ms = stats["s"] / calls * 1000
    queries = stats["n"] / calls
    # One gift's statements, then each EXPLAIN ANALYZEd in a transaction that is rolled back.
    try:
        with transaction.atomic():
            with CaptureQueriesContext(connection) as ctx:
                one(0, "px")
            raise _Rollback
    except _Rollback:
        pass
    statements = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].split(" ", 1)[0].upper() not in ("SAVEPOINT", "RELEASE", "ROLLBACK")
    ]
    explain = _explain(statements)
    tree = _pyinstrument_text(lambda i: one(i, "pp"), calls)
    results_line = (
        f"one `gift_send` (single process, no contention): **{per_call_ms:.2f} ms**, of which "
        f"**{db_ms:.2f} ms** waiting on {queries:.0f} statements (+ BEGIN/COMMIT round trips "
        f"not counted), **{per_call_ms - db_ms:.2f} ms** Python"
    )
    notes.append("profile: " + results_line.replace("**", ""))
    sections["gift_send profile"] = (
        results_line
        + ".\n\nStatements of one gift (savepoints omitted), `EXPLAIN (ANALYZE, BUFFERS)` "
        "each, in a rolled-back transaction:\n\n"
        + explain
        + f"\n\npyinstrument, {calls} calls of `gift_send` in one process:\n\n```\n"
        + tree
        + "\n```\n"
    )


def profile_request(token: str, handles) -> None:
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_X_FORWARDED_PROTO="https")
    calls = CFG["profile_calls"]

    def one(i):
        response = client.post(
            "/api/v1/gifts/send/",
            data=json.dumps({"creator": handles[i % len(handles)], "gift": GIFT_SLUG}),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
        )
        if response.status_code != 201:
            raise RuntimeError(f"profile request: {response.status_code} {response.content[:200]}")

    for i in range(10):
        one(i)
    stats, wrapper = _timed_queries()
    started = time.perf_counter()
    with connection.execute_wrapper(wrapper):
        for i in range(calls):
            one(i)
    total = time.perf_counter() - started
    per_ms = total / calls * 1000
    db_ms = stats["s"] / calls * 1000
    queries = stats["n"] / calls
    tree = _pyinstrument_text(one, calls)
    line = (
        f"one `POST /api/v1/gifts/send/` through the full Django stack in-process (test client: "
        f"middleware, token auth, throttle in Redis, idempotency record, DRF): "
        f"**{per_ms:.2f} ms**, **{queries:.0f} statements**, **{db_ms:.2f} ms** waiting on them, "
        f"**{per_ms - db_ms:.2f} ms** Python"
    )
    notes.append("profile: " + line.replace("**", ""))
    sections["request profile"] = (
        line + f".\n\npyinstrument, {calls} requests:\n\n```\n" + tree + "\n```\n"
    )


# ---------------------------------------------------------------------------------- 3. HTTP


def _children(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except ImportError:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True)
        return [int(x) for x in out.stdout.split()]


def _vm_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pyspy(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists() or seconds <= 0:
        return None
    return subprocess.Popen(
        [str(exe), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _pyspy_summary(raw: Path) -> str:
    """Inclusive share of samples per function (collapsed stacks), our code and the big parts."""
    if not raw.exists():
        return ""
    total = 0
    inclusive: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            name = re.sub(r"\s*\(([^)]*)\)", lambda m: " (" + _short_path(m.group(1)) + ")", frame)
            name = re.sub(r":\d+\)$", ")", name)
            if name not in seen:
                seen.add(name)
                inclusive[name] = inclusive.get(name, 0) + n
    if not total:
        return ""
    top = sorted(inclusive.items(), key=lambda kv: -kv[1])
    keep = [
        (name, n)
        for name, n in top
        if n / total >= 0.02 and not name.startswith(("<module>", "run (", "_bootstrap"))
    ][:45]
    lines = [f"{n / total * 100:5.1f}%  {name}" for name, n in keep]
    return f"{total} samples\n" + "\n".join(lines)


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# ---------------------------------------------------------------------------------- 4. bulk
# Payout batch and earnings release over 100k creators on a durable server: bench/bulk.py.


def bench_bulk() -> None:
    from bench import bulk

    bulk.run_section(results, notes, quick=QUICK)


def bench_renewals() -> None:
    from bench import renewals

    renewals.run_section(results, notes, quick=QUICK, log=log)


# ---------------------------------------------------------------------------------- 5. reconcile


def _seed_pending_recharges(user_ids: list[int], pis: list[str], price: str = "1.43"):
    """Pending recharges (100 coins each) for ``pis``, in SQL; returns (id, pi, user) rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wallets_recharge (user_id, package_id, coins, price, price_currency, "
            " payment_intent, status, failure_message, coins_refunded, amount_refunded, "
            " amount_refunded_currency, created_at, succeeded_at, updated_at) "
            "SELECT (%s::bigint[])[1 + (g.n - 1) %% %s], NULL, 100, %s, 'USD', g.pi, "
            " 'pending', '', 0, 0, 'USD', now(), NULL, now() "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS g(pi, n) "
            "RETURNING id, payment_intent, user_id",
            [user_ids, len(user_ids), price, pis],
        )
        return cursor.fetchall()


def _timed(fn):
    """(result, wall s, our process's CPU s, PostgreSQL's CPU s) of ``fn()``."""
    cpu, pg = self_cpu_s(), pg_cpu_s()
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    return result, wall, self_cpu_s() - cpu, pg_cpu_s() - pg


def _localstripe_pid() -> int:
    port = os.environ.get("STRIPE_API_BASE", "").rsplit(":", 1)[-1].strip("/")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"localstripe" in a for a in argv) and port.encode() in argv:
            return int(entry.name)
    return 0


def bench_reconcile(senders) -> None:
    """``payments_reconcile`` over a recorded listing of N succeeded PaymentIntents whose
    webhooks were all lost (every one must be credited: the worst case), then again (all
    consistent: the steady state); then the same against localstripe, with its listing
    timed on its own (localstripe is a slow Python fake: its share is reported apart)."""

    from wallets import stripe_gateway as gateway
    from wallets.services import payments_reconcile

    n = int(os.environ.get("BENCH_RECONCILE_N", CFG["reconcile"]))
    user_ids = [u.pk for u in senders]
    now = int(time.time())
    rows = _seed_pending_recharges(user_ids, [f"pi_bench_{g}" for g in range(1, n + 1)])
    listing = [
        gateway.PaymentIntent.from_stripe(
            {
                "id": pi,
                "object": "payment_intent",
                "status": "succeeded",
                "amount": 143,
                "currency": "usd",
                "created": now,
                "metadata": {"app": "applause", "recharge_id": str(rid), "user_id": str(uid)},
                "latest_charge": f"ch_bench_{rid}",
            }
        )
        for rid, pi, uid in rows
    ]
    original = gateway.payment_intents_since, gateway.refunds_since
    gateway.payment_intents_since = lambda since: iter(listing)
    gateway.refunds_since = lambda since: iter(())
    load = os.getloadavg()[0]
    try:
        log(f"reconcile: {n} PaymentIntents (recorded listing), all to credit")
        if os.environ.get("BENCH_RECONCILE_PROFILE"):
            import cProfile
            import io
            import pstats

            profile = cProfile.Profile()
            run, elapsed, cpu, pg = _timed(lambda: profile.runcall(payments_reconcile))
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("cumulative").print_stats(30)
            stats.sort_stats("tottime").print_stats(25)
            sections["reconcile (cProfile)"] = "```\n" + out.getvalue() + "```"
            print(out.getvalue(), file=sys.stderr)
        else:
            run, elapsed, cpu, pg = _timed(payments_reconcile)
        log(f"reconcile: credited in {elapsed:.2f} s (CPU {cpu:.2f} s ours, {pg:.2f} s PostgreSQL)")
        credited = run.counts.get("credited", 0)
        if credited != n:
            raise RuntimeError(f"reconcile credited {credited} of {n}: {run.counts} {run.error}")
        # The pages' receipts, as the worker's tasks would write them after the commits.
        from wallets.services.reconcile_bulk import recharge_receipts_write

        ids = [rid for rid, _pi, _uid in rows]

        def receipts() -> int:
            return sum(
                recharge_receipts_write(recharge_ids=ids[i : i + 100])
                for i in range(0, len(ids), 100)
            )

        written, mail_s, mail_cpu, mail_pg = _timed(receipts)
        log(f"reconcile: {written} receipts written in {mail_s:.2f} s (the worker's share)")
        again, steady, cpu2, pg2 = _timed(payments_reconcile)
        log(f"reconcile: rerun in {steady:.2f} s (CPU {cpu2:.2f} s ours, {pg2:.2f} s PostgreSQL)")
    finally:
        gateway.payment_intents_since, gateway.refunds_since = original
    results["reconcile_10k_s"] = round(elapsed, 2)
    results["reconcile_rerun_10k_s"] = round(steady, 2)
    notes.append(
        f"reconcile over {n:,} PaymentIntents from a recorded listing (no Stripe calls; load "
        f"{load:.1f}): {elapsed:.2f} s when every one needs crediting (CPU: {cpu:.2f} s ours, "
        f"{pg:.2f} s PostgreSQL); then the {written:,} receipts, rendered and written by the "
        f"worker's tasks after each page's commit, {mail_s:.2f} s (CPU {mail_cpu:.2f} s ours, "
        f"{mail_pg:.2f} s PostgreSQL), not in the figure; {steady:.2f} s for the rerun with "
        "nothing to do "
        f"({again.counts.get('payment_intents', 0)} checked; CPU {cpu2:.2f} s ours, "
        f"{pg2:.2f} s PostgreSQL)"
    )
    if os.environ.get("BENCH_RECONCILE_LOCALSTRIPE", "1") != "0":
        _reconcile_localstripe(
            user_ids, int(os.environ.get("BENCH_RECONCILE_STRIPE_N", CFG["reconcile_stripe"]))
        )


def _reconcile_localstripe(user_ids: list[int], n: int) -> None:
    """N PaymentIntents made and paid in localstripe, their recharges pending (webhooks lost):
    the listing alone, then the whole run (listing + crediting), then the rerun."""
    from concurrent.futures import ThreadPoolExecutor

    from wallets import stripe_gateway as gateway
    from wallets.services import payments_reconcile

    if not os.environ.get("STRIPE_API_BASE", "").startswith("http://127.0.0.1"):
        na("reconcile_stripe_s", why="no localstripe (STRIPE_API_BASE)")
        return
    client = gateway.client()

    def make(i: int) -> str:
        intent = client.v1.payment_intents.create(
            params={
                "amount": 143,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "metadata": {"app": "applause", "user_id": str(user_ids[i % len(user_ids)])},
            }
        )
        return str(intent["id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        pis = list(pool.map(make, range(n)))
    made = time.perf_counter() - started
    log(f"reconcile: {n} PaymentIntents made in localstripe in {made:.1f} s")
    # user ids in the metadata must match the recharge's user: same rotation.
    _seed_pending_recharges(user_ids, pis)
    stripe_pid = _localstripe_pid()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    ls_cpu = proc_cpu_s(stripe_pid) if stripe_pid else 0.0
    listed, list_s, list_cpu, _pg = _timed(lambda: len(list(gateway.payment_intents_since(since))))
    list_stripe_cpu = (proc_cpu_s(stripe_pid) - ls_cpu) if stripe_pid else float("nan")
    load = os.getloadavg()[0]
    ls_cpu = proc_cpu_s(stripe_pid) if stripe_pid else 0.0
    run, run_s, run_cpu, run_pg = _timed(payments_reconcile)
    run_stripe_cpu = (proc_cpu_s(stripe_pid) - ls_cpu) if stripe_pid else float("nan")
    if run.counts.get("credited", 0) != n:
        raise RuntimeError(f"localstripe reconcile credited {run.counts} of {n}: {run.error}")
    from wallets.models import Recharge
    from wallets.services.reconcile_bulk import recharge_receipts_write

    ids = list(Recharge.objects.filter(payment_intent__in=pis).values_list("pk", flat=True))
    for i in range(0, len(ids), 100):
        recharge_receipts_write(recharge_ids=ids[i : i + 100])
    _again, again_s, again_cpu, again_pg = _timed(payments_reconcile)
    results["reconcile_stripe_s"] = round(run_s, 2)
    notes.append(
        f"reconcile against localstripe ({n:,} PaymentIntents paid there, webhooks lost; "
        f"{listed:,} listed: localstripe pages everything, no created filter; load "
        f"{load:.1f}): listing alone {list_s:.2f} s (localstripe CPU {list_stripe_cpu:.2f} s, "
        f"ours {list_cpu:.2f} s); the whole run {run_s:.2f} s (localstripe CPU "
        f"{run_stripe_cpu:.2f} s, ours {run_cpu:.2f} s, PostgreSQL {run_pg:.2f} s), so our "
        f"work beside the listing ~{max(0.0, run_s - list_s):.2f} s; the rerun with nothing "
        f"to do {again_s:.2f} s (ours {again_cpu:.2f} s, PostgreSQL {again_pg:.2f} s, the rest "
        f"is localstripe listing)"
    )


# ---------------------------------------------------------------------------------- report


def machine() -> dict:
    from django.db import connection

    mem_kb = 0
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
        cursor.execute("SHOW fsync")
        fsync = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        sync = cursor.fetchone()[0]
        cursor.execute("SHOW full_page_writes")
        fpw = cursor.fetchone()[0]
    return dict(
        nproc=os.cpu_count(),
        memory=f"{mem_kb / 1024 / 1024:.1f} GiB",
        cpu=cpu,
        postgresql=f"{pg} (fsync={fsync}, synchronous_commit={sync}, full_page_writes={fpw})",
        python=platform.python_version(),
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def target_status(key: str) -> str:
    if key not in TARGETS:
        return ""
    op, bound = TARGETS[key]
    value = results.get(key)
    if not isinstance(value, (int, float)):
        return "n/a"
    ok = value >= bound if op == ">=" else value <= bound
    return ("met" if ok else "MISSED") + f" ({op} {bound})"


def result_line() -> str:
    return "RESULT " + " ".join(f"{k}={fmt(results.get(k, 'n/a'))}" for k in KEYS)


def table() -> str:
    rows = [f"| {k} | {fmt(results.get(k, 'n/a'))} | {target_status(k)} |" for k in KEYS]
    return "| key | value | target |\n|---|---|---|\n" + "\n".join(rows)


def write_benchmarks_md(info: dict, elapsed: float) -> None:
    generated = [
        BEGIN_MARK,
        "## Latest run (generated by `make bench`)",
        "",
        ", ".join(f"**{k}** {v}" for k, v in info.items()) + f"; the run took {elapsed:.0f} s.",
        "",
        table(),
        "",
        "Notes from the run:",
        "",
        *[f"- {n}" for n in notes],
        "",
        "```",
        result_line(),
        "```",
        "",
    ]
    for title, body in sections.items():
        generated += [f"### Profile: {title}", "", body, ""]
    generated.append(END_MARK)
    block = "\n".join(generated)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""
    if BEGIN_MARK in text and END_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        tail = rest.split(END_MARK, 1)[1]
        text = head + block + tail
    else:
        text = (text or "# Benchmarks\n\n") + "\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)


# ---------------------------------------------------------------------------------- main


def cpu_summary() -> None:
    """What the CPU cost per operation implies for an idle machine with this many cores."""
    cores = os.cpu_count() or 1
    budget = cores * 1000.0  # CPU ms per second
    parts = []
    tx = CPU.get("pgbench_pg", 0) + CPU.get("pgbench_client", 0)
    if tx:
        parts.append(
            f"pgbench transaction {CPU['pgbench_pg']:.2f} ms PostgreSQL + "
            f"{CPU['pgbench_client']:.2f} ms pgbench (CPU-bound ceiling {budget / tx:,.0f}/s)"
        )
    gift = CPU.get("gift_py", 0) + CPU.get("gift_pg", 0)
    if gift:
        parts.append(
            f"gift_send (spread) {CPU['gift_py']:.2f} ms Python + {CPU['gift_pg']:.2f} ms "
            f"PostgreSQL (CPU-bound ceiling {budget / gift:,.0f}/s)"
        )
        hot = CPU.get("gift_hot_py", 0) + CPU.get("gift_hot_pg", 0)
        if hot:
            parts.append(f"gift_send (hot) {hot:.2f} ms in all")
        fn = CPU.get("gift_fn_pg", 0) + CPU.get("gift_fn_client", 0)
        if fn:
            parts.append(
                f"pgbench gift function {CPU['gift_fn_pg']:.2f} ms PostgreSQL + "
                f"{CPU['gift_fn_client']:.2f} ms pgbench (CPU-bound ceiling {budget / fn:,.0f}/s); "
                f"CPU-projected service_vs_ceiling {fn / gift:.3f}"
            )
    web = CPU.get("http_web", 0) + CPU.get("http_pg", 0)
    if web:
        parts.append(
            f"HTTP gift {CPU['http_web']:.2f} ms web workers + {CPU['http_pg']:.2f} ms "
            f"PostgreSQL + {CPU['http_client']:.2f} ms load client (CPU-bound ceiling "
            f"{budget / (web + CPU['http_client']):,.0f}/s with the client on the same cores, "
            f"{budget / web:,.0f}/s without)"
        )
    if parts:
        notes.append("CPU per operation, independent of other load: " + "; ".join(parts))


LOAD_BEFORE: dict[str, float] = {}


# BENCH_ONLY=gift_send,http (step names as logged) runs a subset; the others print n/a.
ONLY = {x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()}


def _step(name: str, keys: tuple[str, ...], fn, *args) -> None:
    if ONLY and name not in ONLY and not name.startswith("verify_ledger"):
        if keys:
            na(*keys, why="not in BENCH_ONLY")
        return
    # Other work on the machine skews every number: record how busy it was.
    LOAD_BEFORE[name] = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        fn(*args)
    except Exception as exc:
        traceback.print_exc()
        na(*[k for k in keys if k not in results], why=f"{name} failed: {exc!r}"[:300])
    got = " ".join(f"{k}={fmt(results[k])}" for k in keys if k in results)
    log(f"{name}: {time.perf_counter() - started:.1f} s {got}")


def main() -> int:
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        print("bench/run.py needs DATABASE_URL pointing at PostgreSQL: run `make bench`.")
        return 2
    run_started = time.perf_counter()
    dbname = f"bench_{os.getpid()}"
    db_url = url_with_db(base_url, dbname)
    admin_sql(base_url, f'CREATE DATABASE "{dbname}"')
    log(f"database {dbname} created")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    redis_url = os.environ.get("REDIS_URL", "")
    os.environ.update(
        DATABASE_URL=db_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-" + uuid.uuid4().hex * 2,
        APPLAUSE_TESTING="0",
        THROTTLE_MONEY="100000000/min",
        LOG_LEVEL="WARNING",
        CACHE_KEY_PREFIX=f"bench{os.getpid()}",
    )
    os.environ.pop("PYTEST_XDIST_WORKER", None)
    if redis_url.startswith("redis://"):
        # A private broker database: the payout batch's send tasks queue there (no worker).
        os.environ["CELERY_BROKER_URL"] = redis_url.rsplit("/", 1)[0] + "/15"
    else:
        os.environ["CELERY_BROKER_URL"] = "memory://"
    workdir = Path(tempfile.mkdtemp(prefix="applause-bench."))
    try:
        import django

        django.setup()
        from django.core.management import call_command

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        log(f"migrated in {time.perf_counter() - started:.1f} s")
        info = machine()

        _step("pgbench", ("db_ceiling_tx_per_s",), bench_pgbench, db_url, workdir)

        started = time.perf_counter()
        n_senders = CFG["workers"] * CFG["senders_per_worker"] + CFG["http_senders"] + 1
        senders, handles = seed_gift_world(n_senders, CFG["creators"])
        log(f"seeded {n_senders} senders, {len(handles)} creators in "
            f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        this = sys.modules[__name__]
        _step("gift fn pgbench", ("db_ceiling_gift_fn_tx_per_s",
                                  "db_ceiling_gift_fn_async_commit_tx_per_s"),
              gift_bench.gift_fn_ceiling, this, db_url, workdir, senders, handles)  # fmt: skip
        gift_keys = ("hot_gifts_per_s", "spread_gifts_per_s", "hot_spread_ratio",
                     "service_vs_ceiling")  # fmt: skip
        _step("gift_send", gift_keys, bench_gifts, senders, handles)
        _step("one sender 8 connections",
              ("one_sender_8conn_gifts_per_s", "one_sender_double_spend"),
              gift_bench.one_sender_eight_connections, this, handles)  # fmt: skip
        _step("gift profile", (), profile_gift, senders, handles)
        _step("verify_ledger", ("ledger_ok",), verify_ledger)
        http_keys = ("http_gifts_per_s", "http_p99_ms", "http_errors", "web_peak_rss_mb")
        _step("http", http_keys, gift_bench.http_open_loop, this, workdir, senders, handles)
        granian_keys = ("granian_http_gifts_per_s", "granian_http_p99_ms", "granian_http_errors")
        granian = functools.partial(gift_bench.http_open_loop, web_server="granian")
        _step("granian", granian_keys, granian, this, workdir, senders, handles)
        _step("two servers", ("two_servers_gifts_per_s", "two_servers_totals_ok"),
              gift_bench.two_servers, this, workdir, senders, handles)  # fmt: skip
        _step("pgbouncer", ("pgbouncer_http_gifts_per_s", "pgbouncer_http_p99_ms",
                            "pgbouncer_http_errors"),
              gift_bench.http_through_pgbouncer, this, workdir, db_url, senders,
              handles)  # fmt: skip
        if os.environ.get("BENCH_WEB_VARIANTS"):
            _step("web variants", (), gift_bench.web_variants, this, workdir, senders, handles)
        from knox.models import AuthToken

        token = AuthToken.objects.create(user=senders[-1])[1]
        _step("request profile", (), profile_request, token, handles)
        _step("bulk", tuple(BULK_KEYS), bench_bulk)
        _step("renewals", tuple(RENEWAL_KEYS), bench_renewals)
        _step("reconcile", ("reconcile_10k_s", "reconcile_rerun_10k_s", "reconcile_stripe_s"),
              bench_reconcile, senders)  # fmt: skip
        _step("verify_ledger (end)", ("ledger_ok",), verify_ledger)

        elapsed = time.perf_counter() - run_started
        cpu_summary()
        notes.append(
            "1-minute load average before each step (2 cores; above ~1 means other work "
            "shared the machine): "
            + ", ".join(f"{name} {load:.1f}" for name, load in LOAD_BEFORE.items())
        )
        print()
        print(table())
        print()
        for note in notes:
            print(f"- {note}")
        print()
        if (not QUICK and not ONLY) or os.environ.get("BENCH_WRITE"):
            write_benchmarks_md(info, elapsed)
            print(f"(written to {BENCHMARKS_MD.name})")
        print(result_line(), flush=True)
        return 0
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with contextlib.suppress(Exception):
            admin_sql(base_url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            log(f"database {dbname} dropped")
        if redis_url.startswith("redis://"):
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
        with contextlib.suppress(Exception):
            import shutil

            shutil.rmtree(workdir)


if __name__ == "__main__":
    raise SystemExit(main())
