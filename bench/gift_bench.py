"""Gift benchmarks of issue #15, run by ``bench/run.py`` (``make bench``).

- ``db_ceiling_gift_fn_tx_per_s``: pgbench calling exactly the SQL a gift runs (one call of
  ``gift_send_v4``, as ``gifts.services.gift_send`` sends it), 16 clients, simple protocol,
  spread over the bench creators; the like-for-like ceiling of ``service_vs_ceiling``.
- one sender from 8 connections at once: one wallet row, every coin spent once.
- open-loop HTTP at fixed rates (``bench/http_open_loop.py``) against ``make serve``'s server.
- two servers at once (two gunicorns, nothing shared but PostgreSQL and Redis), then
  ``verify_ledger`` and the totals.
- the same HTTP load through PgBouncer in transaction pooling mode.

Each function takes the running ``bench/run.py`` module (``b``) for its helpers, results and
notes, so this module adds steps without touching the others' code.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path

from tests.pgbouncer import PgBouncer, pgbouncer_binary

GIFT_FN_SCRIPT = r"""
\set sender random({lo}, {hi})
\set creator random(0, {creators_max})
SELECT {function}(:sender, 'gift:' || :sender || ':pgb-' || gen_random_uuid(), 'bench-c' || :creator, '{slug}', 1, '', '', '', NULL, now(), 18, {daily_limit}, 1, 1, NULL, NULL, NULL, NULL);
"""


def config(quick: bool) -> dict:
    if quick:
        return dict(open_rates=[20, 40], open_headline_rate=40, open_s=2, open_warmup_s=1)
    return dict(open_rates=[100, 200, 400, 800], open_headline_rate=400, open_s=30, open_warmup_s=3)


OPEN_LOOP: list[dict] = []  # every open-loop run, for the notes
CFG = config(os.environ.get("BENCH_QUICK", "") not in ("", "0"))


def _contiguous_ids(users) -> tuple[int, int]:
    ids = sorted(u.pk for u in users)
    if ids[-1] - ids[0] + 1 != len(ids):
        raise RuntimeError("the bench senders' ids are not contiguous")
    return ids[0], ids[-1]


def _pgbench(b, db_url: str, script: Path, seconds: float, env_extra: dict | None = None):
    params = b.pg_params(db_url)
    cmd = [
        str(b.PG_BIN / "pgbench"), "-n", "-c", "16", "-j", "2", "-T", str(seconds),
        "-f", str(script), "-h", params["host"], "-p", str(params["port"]),
        "-U", params["user"], params["dbname"],
    ]  # fmt: skip
    env = dict(os.environ, PGPASSWORD=params["password"], **(env_extra or {}))
    pg_before, child_before = b.pg_cpu_s(), b.children_cpu_s()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    pg_used, client_used = b.pg_cpu_s() - pg_before, b.children_cpu_s() - child_before
    tps = b.re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
    done = b.re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    latency = b.re.search(r"latency average = ([0-9.]+) ms", out.stdout)
    if out.returncode != 0 or not tps or not done:
        raise RuntimeError(f"pgbench failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    n = int(done.group(1))
    return dict(
        tps=float(tps.group(1)),
        n=n,
        latency_ms=float(latency.group(1)) if latency else None,
        pg_cpu_ms=pg_used / n * 1000 if n else 0.0,
        client_cpu_ms=client_used / n * 1000 if n else 0.0,
    )


def gift_fn_ceiling(b, db_url: str, workdir: Path, senders, handles) -> None:
    """pgbench calling ``gift_send_v4`` exactly as the service does: durable, then (an extra
    column only) with ``synchronous_commit=off`` for the session."""
    from django.conf import settings
    from django.db import connection

    from gifts.services.one_statement import GIFT_SEND_FUNCTION

    # BENCH_GIFT_FN=gift_send_v3 measures an older version (still in the database: an A/B on
    # the same schema); BENCH_PGOPTIONS adds server settings to pgbench's sessions (e.g.
    # "-c commit_delay=100 -c commit_siblings=5"), applied to both of its runs.
    function = os.environ.get("BENCH_GIFT_FN") or GIFT_SEND_FUNCTION
    pgoptions = os.environ.get("BENCH_PGOPTIONS", "").strip()
    pool = senders[: b.CFG["workers"] * b.CFG["senders_per_worker"]]
    lo, hi = _contiguous_ids(pool)
    script = workdir / "gift_fn.sql"
    script.write_text(
        GIFT_FN_SCRIPT.format(
            function=function,
            lo=lo,
            hi=hi,
            creators_max=len(handles) - 1,
            slug=b.GIFT_SLUG,
            daily_limit=settings.DAILY_GIFT_LIMIT,
        )
    )

    def events() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM wallets_ledgertransaction "
                "WHERE kind = 'gift' AND idempotency_key LIKE 'gift:%%:pgb-%%'"
            )
            return cursor.fetchone()[0]

    hot_script = workdir / "gift_fn_hot.sql"
    hot_script.write_text(
        script.read_text().replace(f"random(0, {len(handles) - 1})", "random(0, 0)")
    )
    if hot_script.read_text() == script.read_text():
        raise RuntimeError("the hot pgbench script still picks a random creator")
    before = events()
    b.log(f"pgbench {function}: 16 clients, {b.CFG['pgbench_s']} s, durable")
    options = {"PGOPTIONS": pgoptions} if pgoptions else {}
    with b.WaitSampler() as spread_waits:
        durable = _pgbench(b, db_url, script, b.CFG["pgbench_s"], options)
    # Item 5: the same calls all to one creator (every entry's key-share lock on that creator's
    # account rows and the platform's): hot against spread at the database alone.
    b.log(f"pgbench {function}: every gift to one creator, {b.CFG['pgbench_s']} s, durable")
    with b.WaitSampler() as hot_waits:
        hot = _pgbench(b, db_url, hot_script, b.CFG["pgbench_s"], options)
    made = events() - before
    if made != durable["n"] + hot["n"]:
        raise RuntimeError(
            f"pgbench ran {durable['n'] + hot['n']} gift calls but {made} gifts were made"
        )
    b.results["db_ceiling_gift_fn_tx_per_s"] = round(durable["tps"])
    b.CPU["gift_fn_pg"] = durable["pg_cpu_ms"]
    b.CPU["gift_fn_client"] = durable["client_cpu_ms"]
    b.log(f"pgbench {function}: synchronous_commit=off (extra column, not the headline)")
    fast = _pgbench(
        b,
        db_url,
        script,
        b.CFG["pgbench_s"],
        {"PGOPTIONS": f"{pgoptions} -c synchronous_commit=off".strip()},
    )
    b.results["db_ceiling_gift_fn_async_commit_tx_per_s"] = round(fast["tps"])
    b.notes.append(
        f"pgbench {function} (16 clients, one call per transaction, spread over "
        f"{len(handles)} creators): durable {durable['tps']:.0f}/s, latency "
        f"{durable['latency_ms']} ms, CPU per gift {durable['pg_cpu_ms']:.2f} ms PostgreSQL + "
        f"{durable['client_cpu_ms']:.2f} ms pgbench; with synchronous_commit=off "
        f"{fast['tps']:.0f}/s (not durable: an extra column only)"
        + (f"; session options {pgoptions!r}" if pgoptions else "")
    )
    b.notes.append(
        f"pgbench {function}, every gift to ONE creator: {hot['tps']:.0f}/s against "
        f"{durable['tps']:.0f}/s spread (ratio {hot['tps'] / durable['tps']:.2f}), CPU per gift "
        f"{hot['pg_cpu_ms']:.2f} ms PostgreSQL; mean active backends by state: hot "
        f"{hot_waits.top()}; spread {spread_waits.top()}"
    )


# --------------------------------------------------------------- one sender, 8 connections


def _one_sender_worker(idx: int, sender_id: int, handles, slug: str, deadline: float, queue):
    from django.db import connection

    from accounts.models import User
    from config.errors import DomainError
    from gifts.services import gift_send

    ok = refused = 0
    others: list[str] = []
    try:
        sender = User.objects.get(pk=sender_id)
        n = 0
        while time.time() < deadline:
            try:
                gift_send(
                    sender=sender,
                    creator_handle=handles[n % len(handles)],
                    gift_slug=slug,
                    client_key=f"one{idx}-{n}",
                )
                ok += 1
            except DomainError as exc:
                if exc.code != "insufficient_funds":
                    others.append(exc.code)
                refused += 1
                if refused >= 3:
                    break
            n += 1
    except Exception:
        others.append(traceback.format_exc()[-300:])
    finally:
        connection.close()
    queue.put(dict(ok=ok, refused=refused, others=others))


def one_sender_eight_connections(b, handles) -> None:
    """One sender, 8 processes (8 connections) gifting 1 coin at once until the wallet is
    empty: exactly the funded coins are spent, never one more."""
    from django.db import connections

    from accounts.models import User
    from gifts.models import GiftEvent
    from wallets.services import wallet_adjust, wallet_get

    coins = 200 if b.QUICK else 3000
    staff = User.objects.get(username="bench-staff")
    sender = User.objects.create(username="bench-one-sender", date_of_birth="1990-01-01")
    wallet_adjust(user=sender, coins=coins, reason="bench", actor=staff)
    connections.close_all()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    deadline = time.time() + 60
    procs = [
        ctx.Process(
            target=_one_sender_worker, args=(i, sender.pk, handles, b.GIFT_SLUG, deadline, queue)
        )
        for i in range(8)
    ]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    outs = [queue.get(timeout=120) for _ in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(timeout=30)
    ok = sum(o["ok"] for o in outs)
    others = [x for o in outs for x in o["others"]]
    events = GiftEvent.objects.filter(sender=sender).count()
    balance = wallet_get(user=sender).balance
    double_spend = ok != coins or events != coins or balance != 0
    b.results["one_sender_8conn_gifts_per_s"] = round(ok / elapsed)
    b.results["one_sender_double_spend"] = int(double_spend)
    b.notes.append(
        f"one sender from 8 connections: {coins} coins, {ok} gifts of 1 coin accepted, {events} "
        f"gift events, wallet {balance} after, {ok / elapsed:.0f} gifts/s (one wallet row: they "
        f"queue on it); other errors: {others[:3] or 'none'}"
    )
    if double_spend or others:
        raise RuntimeError(f"one sender from 8 connections: {ok=} {events=} {balance=} {others=}")


# --------------------------------------------------------------- HTTP servers and load


class Server:
    """``make serve``'s server (scripts/serve.py: gunicorn, or ``WEB_SERVER=granian``) on a free
    port."""

    def __init__(self, b, workdir: Path, name: str, env_extra: dict | None = None):
        self.b = b
        self.port = b.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gunicorn-{name}.log"
        env = dict(os.environ)
        env.update(DEBUG="0", THROTTLE_MONEY="off", LOG_LEVEL="WARNING", PORT=str(self.port))
        env.update(env_extra or {})
        self.workers = int(env.get("WEB_WORKERS") or (os.cpu_count() or 1) + 1)
        env["HOST"] = "127.0.0.1"
        self.kind = env.get("WEB_SERVER") or "gunicorn"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (open while the server runs)
        # Exactly what make serve runs (scripts/serve.py replaces itself with the server).
        cmd = [sys.executable, "scripts/serve.py"]
        self.proc = subprocess.Popen(cmd, cwd=b.REPO, env=env, stdout=self._log, stderr=self._log)
        deadline = time.time() + 90
        while True:
            try:
                probe = urllib.request.Request(
                    self.base + "/healthz", headers={"X-Forwarded-Proto": "https"}
                )
                with urllib.request.urlopen(probe, timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                tail = self.log_path.read_text()[-2000:]
                raise RuntimeError(f"{self.kind} did not come up: {tail}")
            time.sleep(0.3)
        time.sleep(1.0)

    def pids(self) -> list[int]:
        return self.b._children(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _tokens(b, workdir: Path, senders, handles) -> None:
    from knox.models import AuthToken

    if (workdir / "open_tokens.json").exists():
        return
    users = senders[: b.CFG["workers"] * b.CFG["senders_per_worker"]]
    tokens = [AuthToken.objects.create(user=u)[1] for u in users]
    (workdir / "open_tokens.json").write_text(json.dumps(tokens))
    (workdir / "open_creators.json").write_text(json.dumps(handles))


def _load(b, workdir: Path, servers: list[Server], rate: float, *, hot=False, spy=False) -> dict:
    """One open-loop run; also the CPU the web workers and PostgreSQL used per request."""
    duration = CFG["open_s"]
    warmup = CFG["open_warmup_s"]
    cmd = [
        sys.executable, str(b.REPO / "bench" / "http_open_loop.py"),
        "--tokens", str(workdir / "open_tokens.json"),
        "--creators", str(workdir / "open_creators.json"),
        "--gift", b.GIFT_SLUG, "--rate", str(rate),
        "--duration", str(duration), "--warmup", str(warmup),
    ] + [arg for s in servers for arg in ("--url", s.base)]  # fmt: skip
    if hot:
        cmd.append("--hot")
    from gifts.models import GiftEvent

    load_before = os.getloadavg()[0]
    events_before = GiftEvent.objects.count()
    pids = [pid for s in servers for pid in s.pids()]
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.2 + warmup)
    web0, pg0 = sum(b.proc_cpu_s(p) for p in pids), b.pg_cpu_s()
    events0 = GiftEvent.objects.count()
    spy_out = workdir / "pyspy.txt"
    spying = b._pyspy(pids[0], b.CFG["pyspy_s"], spy_out) if spy and pids else None
    peak_rss = 0
    while client.poll() is None:
        peak_rss = max(peak_rss, sum(b._vm_kb(p, "VmRSS") for p in pids))
        time.sleep(0.25)
    web1, pg1 = sum(b.proc_cpu_s(p) for p in pids), b.pg_cpu_s()
    events1 = GiftEvent.objects.count()
    out, err = client.communicate()
    if client.returncode != 0:
        raise RuntimeError(f"open-loop client failed: {err.decode()[-1500:]}")
    data = json.loads(out.decode().strip().splitlines()[-1])
    # Per gift the servers made in the same window (answered in time or not): dividing by the
    # requests sent would count requests an overloaded server never got to.
    made_in_window = max(1, events1 - events0)
    data["web_cpu_ms"] = round((web1 - web0) / made_in_window * 1000, 2)
    data["pg_cpu_ms"] = round((pg1 - pg0) / made_in_window * 1000, 2)
    data["load"] = round(load_before, 1)
    # What the servers did, answered in time or not (a client that gave up after 10 s does
    # not stop the server): gifts made per second of the whole run.
    made = GiftEvent.objects.count() - events_before
    data["gifts_made_per_s"] = round(made / (warmup + duration), 1)
    data["peak_rss_mb"] = round(peak_rss / 1024)
    if spying:
        spying.wait(timeout=60)
        summary = b._pyspy_summary(spy_out)
        if summary:
            b.sections["py-spy of one web worker under the open-loop HTTP load"] = (
                f"`py-spy record` of one of the {len(pids)} web workers for {b.CFG['pyspy_s']} s "
                f"at {rate}/s (inclusive share of samples, idle included):\n\n```\n{summary}\n```\n"
            )
    return data


def _row(label: str, d: dict) -> str:
    return (
        f"| {label} | {d['rate']:.0f} | {d['achieved_per_s']:.0f} | {d['gifts_made_per_s']:.0f} | "
        f"{d['p50_ms']} | "
        f"{d['p99_ms']} | {d['max_ms']} | {d['errors']} | {d['client_cpu_ms_per_request']} | "
        f"{d['web_cpu_ms']} + {d['pg_cpu_ms']} | {d['load']} |"
    )


TABLE_HEAD = (
    "| run | rate due /s | achieved /s (201 in time) | gifts made /s (answered or not) | p50 ms | "
    "p99 ms | max ms | errors | load generator CPU ms/req | CPU ms per gift made, web + PostgreSQL | "
    "load before |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def _held(d: dict) -> bool:
    return (
        d["errors"] == 0
        and d["p99_ms"] is not None
        and d["p99_ms"] <= 100
        and d["achieved_per_s"] >= 0.95 * d["rate"]
    )


def http_open_loop(b, workdir: Path, senders, handles, *, web_server: str = "") -> None:
    """Fixed arrival rates against one ``make serve`` server, the throttle configured off.
    ``web_server="granian"``: the same against ``WEB_SERVER=granian`` (its own keys)."""
    _tokens(b, workdir, senders, handles)
    env = {"WEB_SERVER": web_server} if web_server else {}
    server = Server(b, workdir, web_server or "one", env)
    label = f"one server, {server.kind}, {server.workers} workers"
    rows = []
    try:
        held = 0.0
        for rate in CFG["open_rates"]:
            b.log(f"http open loop: {rate}/s for {CFG['open_s']} s ({label})")
            headline = rate == CFG["open_headline_rate"]
            d = _load(b, workdir, [server], rate, spy=headline and not web_server)
            rows.append(_row(label, d))
            OPEN_LOOP.append(d)
            if _held(d):
                held = max(held, rate)
            b.notes.append(f"open loop {rate}/s ({server.kind}): answers {d['statuses']}")
            if headline and web_server:
                b.results[f"{web_server}_http_p99_ms"] = d["p99_ms"]
                b.results[f"{web_server}_http_errors"] = d["errors"]
                b.CPU[f"http_web_{web_server}"] = d["web_cpu_ms"]
            elif headline:
                b.CPU["http_web"], b.CPU["http_pg"] = d["web_cpu_ms"], d["pg_cpu_ms"]
                b.CPU["http_client"] = d["client_cpu_ms_per_request"]
                b.results["http_p99_ms"] = d["p99_ms"]
                b.results["http_errors"] = d["errors"]
                b.results["web_peak_rss_mb"] = d["peak_rss_mb"]
        b.results[f"{web_server}_http_gifts_per_s" if web_server else "http_gifts_per_s"] = round(
            held
        )
    finally:
        server.stop()
    if web_server:
        b.sections["open-loop HTTP"] = (
            b.sections.get("open-loop HTTP", TABLE_HEAD) + "\n" + "\n".join(rows)
        )
        return
    b.sections["open-loop HTTP"] = (
        "`POST /api/v1/gifts/send/`, open loop (requests started on schedule whatever the "
        "answers; latency from the moment each was due), "
        f"{CFG['open_s']} s per rate after {CFG['open_warmup_s']} s warm-up, "
        f"{len(json.loads((workdir / 'open_tokens.json').read_text()))} senders round robin, "
        f"random creator of {len(handles)}; throttle configured off (`THROTTLE_MONEY=off`); "
        "errors = any answer but 201 or none within 10 s.\n\n" + TABLE_HEAD + "\n" + "\n".join(rows)
    )


def _gift_totals(sender_ids) -> tuple[int, int, int]:
    """Coins the senders' wallets lack against what was granted, coins of their gift events
    and of their gift entries: equal when nothing was lost or made up."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) * 1000000 - sum(balance) FROM wallets_account "
            "        WHERE kind = 'wallet' AND user_id = ANY(%s)),"
            "       (SELECT coalesce(sum(coins), 0) FROM gifts_giftevent "
            "        WHERE sender_id = ANY(%s)),"
            "       (SELECT -coalesce(sum(e.amount), 0) FROM wallets_entry e "
            "        JOIN wallets_account a ON a.id = e.account_id "
            "        JOIN wallets_ledgertransaction t ON t.id = e.transaction_id "
            "        WHERE a.kind = 'wallet' AND a.user_id = ANY(%s) AND t.kind = 'gift')",
            [sender_ids, sender_ids, sender_ids],
        )
        return cursor.fetchone()


def two_servers(b, workdir: Path, senders, handles) -> None:
    """Two servers (as two machines would run them: nothing shared but PostgreSQL and Redis)
    take gifts at once; then the ledger and the totals must agree."""
    _tokens(b, workdir, senders, handles)
    pool = senders[: b.CFG["workers"] * b.CFG["senders_per_worker"]]
    ids = [u.pk for u in pool]
    # Half the workers each: the two share this machine's 2 cores.
    env = {"WEB_WORKERS": str(max(1, ((os.cpu_count() or 1) + 1) // 2 + 1))}
    first = Server(b, workdir, "a", env)
    second = Server(b, workdir, "b", env)
    try:
        rate = CFG["open_headline_rate"]
        b.log(f"two servers: {rate}/s split over both for {CFG['open_s']} s")
        d = _load(b, workdir, [first, second], rate)
    finally:
        first.stop()
        second.stop()
    OPEN_LOOP.append(d)
    b.results["two_servers_gifts_per_s"] = round(d["achieved_per_s"])
    granted_minus_left, event_coins, entry_coins = _gift_totals(ids)
    b.verify_ledger()
    totals_ok = granted_minus_left == event_coins == entry_coins
    b.results["two_servers_totals_ok"] = int(totals_ok and b.results.get("ledger_ok") == 1)
    b.sections["open-loop HTTP"] = (
        b.sections.get("open-loop HTTP", TABLE_HEAD)
        + "\n"
        + _row(f"two servers × {env['WEB_WORKERS']} workers", d)
    )
    b.notes.append(
        f"two servers at once ({d['per_url_ok'][0]} + {d['per_url_ok'][1]} gifts answered 201 "
        f"in the window): coins gone from the senders' wallets {granted_minus_left}, in their "
        f"gift events {event_coins}, in their wallet gift entries {entry_coins}; "
        f"verify_ledger {'passes' if b.results.get('ledger_ok') == 1 else 'FAILS'}"
    )
    if not totals_ok:
        raise RuntimeError("two servers: the totals disagree")


# --------------------------------------------------------------- PgBouncer


def http_through_pgbouncer(b, workdir: Path, db_url: str, senders, handles) -> None:
    """The HTTP load with the web workers connected to PgBouncer (transaction pooling, fewer
    server connections than web threads), as many web servers would share one PostgreSQL."""
    if pgbouncer_binary() is None:
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    _tokens(b, workdir, senders, handles)
    params = b.pg_params(db_url)
    pool = 8
    bouncer = PgBouncer(
        host=params["host"], port=params["port"], user=params["user"], mode="transaction", pool=pool
    )
    with bouncer:
        server = Server(
            b,
            workdir,
            "pgbouncer",
            {"DATABASE_URL": bouncer.url(params["dbname"]), "DATABASE_POOL_MODE": "transaction"},
        )
        try:
            rate = CFG["open_headline_rate"]
            b.log(f"pgbouncer: {rate}/s through transaction pooling ({pool} server connections)")
            d = _load(b, workdir, [server], rate)
        finally:
            server.stop()
    OPEN_LOOP.append(d)
    b.results["pgbouncer_http_gifts_per_s"] = round(d["achieved_per_s"])
    b.results["pgbouncer_http_p99_ms"] = d["p99_ms"]
    b.results["pgbouncer_http_errors"] = d["errors"]
    b.sections["open-loop HTTP"] = (
        b.sections.get("open-loop HTTP", TABLE_HEAD)
        + "\n"
        + _row(f"through PgBouncer (transaction pooling, {pool} server connections)", d)
    )


# --------------------------------------------------------------- web server variants

# (gunicorn worker class or granian, workers, threads): make serve's default first.
# BENCH_WEB_VARIANTS=1 runs them.
WEB_VARIANTS = [
    ("gthread", 3, 4), ("gthread", 2, 8), ("gthread", 5, 2), ("sync", 5, 1),
    ("granian", 3, 8), ("granian", 3, 4), ("granian", 2, 8),
]  # fmt: skip


def web_variants(b, workdir: Path, senders, handles) -> None:
    """The headline rate against other worker / thread counts (an experiment, not a key)."""
    _tokens(b, workdir, senders, handles)
    rate = CFG["open_headline_rate"]
    rows = []
    for klass, workers, threads in WEB_VARIANTS:
        env = {"WEB_WORKERS": str(workers), "WEB_THREADS": str(threads)}
        env.update({"WEB_SERVER": klass} if klass == "granian" else {"WEB_CLASS": klass})
        server = Server(b, workdir, f"{klass}-{workers}x{threads}", env)
        try:
            b.log(f"web variant {klass} {workers} workers x {threads} threads at {rate}/s")
            d = _load(b, workdir, [server], rate)
        finally:
            server.stop()
        rows.append(_row(f"{klass}, {workers} workers × {threads} threads", d))
    b.sections["web server variants"] = (
        f"The same open-loop load at {rate}/s against other gunicorn settings "
        "(`BENCH_WEB_VARIANTS=1`):\n\n" + TABLE_HEAD + "\n" + "\n".join(rows)
    )
