#!/usr/bin/env python
"""``make bench``'s bulk section (issue 16): money in bulk on a DURABLE PostgreSQL.

``run_section()`` (called by bench/run.py, step ``bulk``; ``make bench BENCH=bulk`` runs it
alone) starts a PostgreSQL 15 of its own with ``fsync``, ``synchronous_commit`` and
``full_page_writes`` on (the test services run without them), then runs this file as a
subprocess against it, which:

1. seeds, in SQL, ``BULK_CREATORS`` creators (verified manual payout methods) and
   ``BULK_GIFTS`` gifts from ``BULK_VIEWERS`` viewers (each viewer's coins from one succeeded
   recharge; every gift a journal row, its four entries, a gift event and its leaderboard
   tally), all matured (8 to 30 days old), plus a clawback for 1 creator in 50; wallet
   ``balance_after`` follows each viewer's gifts in order, so ``verify_ledger`` passes;
2. ``verify_ledger`` (every check);
3. ``release_earnings_2m_s``: ``creators.services.earnings_release`` over every creator
   (pending → available, all gifts matured), then again with nothing to do;
4. ``payout_batch_100k_s``: ``payouts.services.payout_batch_run`` (set-based chunks; the
   FIFO statement lines of every gift included; send tasks queued to Redis when there is
   one), then again with nothing to do;
5. ``verify_ledger`` again.

It prints one line ``BULK_JSON {...}`` with the results and notes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")

KEYS = [
    "bulk_creators",
    "bulk_gifts",
    "bulk_seed_s",
    "release_earnings_2m_s",
    "release_rerun_s",
    "payout_batch_100k_s",
    "payout_batch_rerun_s",
    "payout_statement_lines",
    "bulk_ledger_ok",
]
TARGETS = {
    "release_earnings_2m_s": ("<=", 30),
    "payout_batch_100k_s": ("<=", 30),
    "payout_batch_rerun_s": ("<=", 1),
    "bulk_ledger_ok": (">=", 1),
}


def log(message: str) -> None:
    print(f"[bench bulk {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- durable server

DURABLE = [
    "fsync=on",
    "synchronous_commit=on",
    "full_page_writes=on",
    # Room for bulk writes without giving up durability: bigger buffers, fewer checkpoints.
    "shared_buffers=1GB",
    "max_wal_size=16GB",
    "checkpoint_timeout=30min",
    "wal_buffers=64MB",
    "work_mem=64MB",
    "maintenance_work_mem=512MB",
    "wal_compression=on",
    "max_connections=50",
]


@contextlib.contextmanager
def durable_postgres():
    """A throwaway PostgreSQL 15 with durability on; yields its URL (database ``bulk``)."""
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="applause-bulk-pg."))
    os.chmod(root, 0o711)
    data = root / "data"
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        [*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
         "--auth=trust", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = _free_port()
    # BULK_PG_EXTRA: more server settings for profiling (e.g. "log_min_duration_statement=100");
    # durability stays on whatever it says.
    extra = [o for o in os.environ.get("BULK_PG_EXTRA", "").split() if o]
    options = " ".join(f"-c {o}" for o in [*extra, *DURABLE])
    subprocess.run(
        [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"),
         "-w", "-t", "60", "-o",
         f"-p {port} -k {root} -c listen_addresses=127.0.0.1 {options}", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        subprocess.run(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
             "bulk"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield f"postgres://postgres@127.0.0.1:{port}/bulk"
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
             "stop"],
            capture_output=True,
        )  # fmt: skip
        if os.environ.get("BULK_PG_LOG"):  # keep the server's log (profiling)
            shutil.copy(root / "pg.log", os.environ["BULK_PG_LOG"])
        shutil.rmtree(root, ignore_errors=True)


def run_section(results: dict, notes: list, *, quick: bool) -> None:
    """bench/run.py's ``bulk`` step: the subprocess against a durable server."""
    env = dict(os.environ)
    env.setdefault("BULK_CREATORS", "300" if quick else "100000")
    env.setdefault("BULK_GIFTS", str(20 * int(env["BULK_CREATORS"])))
    env.setdefault("BULK_VIEWERS", str(max(10, int(env["BULK_CREATORS"]) // 2)))
    with durable_postgres() as url:
        env["DATABASE_URL"] = url
        log(f"durable PostgreSQL up; {env['BULK_CREATORS']} creators, {env['BULK_GIFTS']} gifts")
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve())],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            timeout=3600,
        )
    line = next(
        (x for x in done.stdout.splitlines() if x.startswith("BULK_JSON ")),
        None,
    )
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"bench/bulk.py exited {done.returncode}: {done.stdout[-1500:]}")
    payload = json.loads(line.removeprefix("BULK_JSON "))
    results.update(payload["results"])
    notes.extend(payload["notes"])


# ---------------------------------------------------------------------------- seeding (SQL)

USER_COLUMNS = (
    "password, is_superuser, username, first_name, last_name, email, is_staff, is_active, "
    "date_joined, date_of_birth"
)
GIFT_COINS = [10, 50, 100, 500, 1000]


def _seq(cursor, table: str) -> str:
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    return cursor.fetchone()[0]


def seed(*, creators: int, gifts: int, viewers: int) -> None:
    from django.db import connection, transaction

    from gifts.models import Gift
    from wallets.models import AccountKind
    from wallets.services import platform_account

    gift_ids = [
        Gift.objects.get_or_create(
            slug=f"bulk-{coins}", defaults=dict(name=f"Bulk {coins}", coins=coins)
        )[0].pk
        for coins in GIFT_COINS
    ]
    platform = {
        kind: platform_account(kind).pk
        for kind in (
            AccountKind.COIN_ISSUANCE,
            AccountKind.COINS_SPENT,
            AccountKind.DIAMOND_ISSUANCE,
        )
    }
    params = dict(
        creators=creators,
        gifts=gifts,
        viewers=viewers,
        gift_ids=gift_ids,
        gift_coins=GIFT_COINS,
        coin_issuance=platform[AccountKind.COIN_ISSUANCE],
        coins_spent=platform[AccountKind.COINS_SPENT],
        diamond_issuance=platform[AccountKind.DIAMOND_ISSUANCE],
    )
    with connection.cursor() as cursor:
        tx_seq = _seq(cursor, "wallets_ledgertransaction")
    steps = [
        (
            "viewers",
            f"""
            INSERT INTO accounts_user ({USER_COLUMNS})
            SELECT '!', false, 'bulk-v-' || g, '', '', '', false, true, now(), '1990-01-01'
            FROM generate_series(1, %(viewers)s) g;
            CREATE TEMP TABLE bv AS
            SELECT split_part(username, '-', 3)::int AS n, id AS user_id
            FROM accounts_user WHERE username LIKE 'bulk-v-%%';
            INSERT INTO wallets_account (kind, unit, user_id, balance, is_hot, checkpoint_at,
                                         is_frozen, frozen_reason, created_at)
            SELECT 'wallet', 'COIN', user_id, 0, false, NULL, false, '', now() FROM bv;
            ALTER TABLE bv ADD COLUMN wallet_id bigint;
            UPDATE bv SET wallet_id = a.id FROM wallets_account a
            WHERE a.user_id = bv.user_id AND a.kind = 'wallet';
            CREATE UNIQUE INDEX ON bv (n);
            """,
        ),
        (
            "creators",
            f"""
            INSERT INTO accounts_user ({USER_COLUMNS})
            SELECT '!', false, 'bulk-c-' || g, '', '', '', false, true, now(), '1990-01-01'
            FROM generate_series(1, %(creators)s) g;
            CREATE TEMP TABLE bc AS
            SELECT split_part(username, '-', 3)::int AS n, id AS user_id
            FROM accounts_user WHERE username LIKE 'bulk-c-%%';
            INSERT INTO wallets_account (kind, unit, user_id, balance, is_hot, checkpoint_at,
                                         is_frozen, frozen_reason, created_at)
            SELECT k, 'DIAMOND', user_id, 0, k = 'diamonds_pending', NULL, false, '', now()
            FROM bc CROSS JOIN (VALUES ('diamonds_pending'), ('diamonds_available')) v(k);
            ALTER TABLE bc ADD COLUMN pending_id bigint, ADD COLUMN creator_id bigint;
            UPDATE bc SET pending_id = a.id FROM wallets_account a
            WHERE a.user_id = bc.user_id AND a.kind = 'diamonds_pending';
            INSERT INTO creators_creator (user_id, handle, display_name, bio, is_active,
                                          created_at, pending_account_id, released_until)
            SELECT user_id, 'bulk-c-' || n, 'Bulk creator ' || n, '', true,
                   now() - interval '40 days', pending_id, NULL FROM bc;
            UPDATE bc SET creator_id = c.id FROM creators_creator c WHERE c.user_id = bc.user_id;
            CREATE UNIQUE INDEX ON bc (n);
            INSERT INTO payouts_payoutmethod (creator_id, rail, account_holder, iban,
                stripe_account_id, is_verified, verified_at, verified_by_id, tax_form_status,
                tax_form_received_at, created_at, updated_at)
            SELECT creator_id, 'manual', 'Bulk Creator', 'DE89370400440532013000', '', true,
                   now() - interval '40 days', NULL, 'w9', now(), now() - interval '40 days',
                   now() - interval '40 days'
            FROM bc;
            """,
        ),
        (
            "gift plan",
            f"""
            CREATE TEMP TABLE bg AS
            SELECT g AS n,
                   1 + (g * 7919) %% %(viewers)s AS viewer_n,
                   1 + g %% %(creators)s AS creator_n,
                   1 + (g / %(creators)s + g) %% 5 AS gift_i,
                   1 + (g / %(creators)s) %% 3 AS quantity,
                   now() - interval '30 days'
                       + (g::float8 / %(gifts)s) * interval '22 days' AS at,
                   nextval('{tx_seq}') AS tx_id
            FROM generate_series(1, %(gifts)s::bigint) g;
            ALTER TABLE bg ADD COLUMN coins bigint;
            UPDATE bg SET coins = quantity * (%(gift_coins)s::bigint[])[gift_i];
            CREATE TEMP TABLE bvc AS
            SELECT viewer_n AS n, SUM(coins) + 100 AS recharged,
                   nextval('{tx_seq}') AS tx_id
            FROM bg GROUP BY viewer_n;
            """,
        ),
        (
            "recharges",
            """
            INSERT INTO wallets_recharge (user_id, package_id, coins, price, price_currency,
                payment_intent, client_key, status, failure_message, coins_refunded,
                amount_refunded, amount_refunded_currency, created_at, succeeded_at, updated_at)
            SELECT bv.user_id, NULL, bvc.recharged, round(bvc.recharged * 0.0143, 2), 'USD',
                   'pi_bulk_' || bv.n, NULL, 'succeeded', '', 0, 0, 'USD',
                   now() - interval '31 days', now() - interval '31 days',
                   now() - interval '31 days'
            FROM bvc JOIN bv USING (n);
            INSERT INTO wallets_ledgertransaction (id, kind, idempotency_key, actor_id, memo,
                                                   reference, reverses_id, created_at)
            SELECT bvc.tx_id, 'recharge', 'recharge:pi_bulk_' || bv.n, bv.user_id,
                   'bulk recharge', 'user:' || bv.user_id, NULL, now() - interval '31 days'
            FROM bvc JOIN bv USING (n);
            INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after,
                                       created_at)
            SELECT bvc.tx_id, bv.wallet_id, bvc.recharged, bvc.recharged,
                   now() - interval '31 days'
            FROM bvc JOIN bv USING (n)
            UNION ALL
            SELECT bvc.tx_id, %(coin_issuance)s, -bvc.recharged, NULL,
                   now() - interval '31 days'
            FROM bvc;
            UPDATE wallets_account a SET balance = 100 FROM bv WHERE a.id = bv.wallet_id;
            """,
        ),
        (
            "gift journals",
            """
            INSERT INTO wallets_ledgertransaction (id, kind, idempotency_key, actor_id, memo,
                                                   reference, reverses_id, created_at)
            SELECT bg.tx_id, 'gift', 'gift:' || bv.user_id || ':bulk-' || bg.n, bv.user_id,
                   bg.quantity || ' x Bulk ' || (%(gift_coins)s::bigint[])[bg.gift_i]
                       || ' to @bulk-c-' || bg.creator_n,
                   'creator:' || bc.creator_id, NULL, bg.at
            FROM bg JOIN bv ON bv.n = bg.viewer_n JOIN bc ON bc.n = bg.creator_n;
            """,
        ),
        (
            "gift entries",
            """
            INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after,
                                       created_at)
            SELECT bg.tx_id, bv.wallet_id, -bg.coins,
                   bvc.recharged - SUM(bg.coins) OVER (PARTITION BY bg.viewer_n ORDER BY bg.n),
                   bg.at
            FROM bg JOIN bv ON bv.n = bg.viewer_n JOIN bvc ON bvc.n = bg.viewer_n
            UNION ALL
            SELECT bg.tx_id, %(coins_spent)s, bg.coins, NULL, bg.at FROM bg
            UNION ALL
            SELECT bg.tx_id, %(diamond_issuance)s, -bg.coins, NULL, bg.at FROM bg
            UNION ALL
            SELECT bg.tx_id, bc.pending_id, bg.coins, NULL, bg.at
            FROM bg JOIN bc ON bc.n = bg.creator_n;
            """,
        ),
        (
            "gift events and tallies",
            """
            INSERT INTO gifts_giftevent (sender_id, creator_id, gift_id, quantity, coins,
                diamonds, live_id, video_id, message, transaction_id, created_at)
            SELECT bv.user_id, bc.creator_id, (%(gift_ids)s::bigint[])[bg.gift_i], bg.quantity,
                   bg.coins, bg.coins, CASE WHEN bg.n %% 3 = 0 THEN 'live-' || bg.n %% 97
                   ELSE '' END, '', '', bg.tx_id, bg.at
            FROM bg JOIN bv ON bv.n = bg.viewer_n JOIN bc ON bc.n = bg.creator_n;
            INSERT INTO gifts_gifttally (creator_id, sender_id, day, coins, diamonds, gifts)
            SELECT bc.creator_id, bv.user_id, bg.at::date, SUM(bg.coins), SUM(bg.coins),
                   COUNT(*)
            FROM bg JOIN bv ON bv.n = bg.viewer_n JOIN bc ON bc.n = bg.creator_n
            GROUP BY 1, 2, 3;
            """,
        ),
        (
            "clawbacks",
            f"""
            CREATE TEMP TABLE bk AS
            SELECT bc.creator_id, bc.pending_id, nextval('{tx_seq}') AS tx_id
            FROM bc WHERE bc.n %% 50 = 7;
            INSERT INTO wallets_ledgertransaction (id, kind, idempotency_key, actor_id, memo,
                                                   reference, reverses_id, created_at)
            SELECT tx_id, 'clawback', 'chargeback:bulk:' || creator_id, NULL,
                   'Chargeback on a bulk recharge: coins charged back.',
                   'creator:' || creator_id, NULL, now() - interval '8 days 1 hour'
            FROM bk;
            INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after,
                                       created_at)
            SELECT tx_id, pending_id, -1, NULL::bigint, now() - interval '8 days 1 hour' FROM bk
            UNION ALL
            SELECT tx_id, %(diamond_issuance)s, 1, NULL, now() - interval '8 days 1 hour'
            FROM bk;
            """,
        ),
    ]
    # A bulk load: the big tables' secondary indexes are rebuilt after it, and foreign keys
    # are not checked row by row (session_replication_role; the data is consistent by
    # construction and verify_ledger checks it). The measured runs have everything back on.
    big = ["wallets_entry", "wallets_ledgertransaction", "gifts_giftevent"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "WHERE i.tablename = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conname = i.indexname)",
            [big],
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET session_replication_role = replica")
    try:
        for name, sql in steps:
            started = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in sql.split(";\n"):
                    if statement.strip():
                        cursor.execute(statement, params)
            log(f"seed {name}: {time.perf_counter() - started:.1f} s")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")
            started = time.perf_counter()
            for _name, definition in indexes:
                cursor.execute(definition)
            log(f"seed indexes rebuilt: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    log(f"seed vacuum analyze: {time.perf_counter() - started:.1f} s")


# ---------------------------------------------------------------------------- measuring


def ledger_failures() -> dict:
    from wallets.ledger_checks import run_checks_timed

    results = run_checks_timed()
    slowest = sorted(results, key=lambda r: -r[2])[:5]
    log("verify_ledger slowest checks: " + ", ".join(f"{n} {s:.1f} s" for n, _p, s in slowest))
    return {name: failures[:3] for name, failures, _seconds in results if failures}


def measure() -> dict:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from creators.services import earnings_release
    from payouts import tasks
    from payouts.models import PayoutStatementLine
    from payouts.services import payout_batch_run

    creators = int(os.environ["BULK_CREATORS"])
    gifts = int(os.environ["BULK_GIFTS"])
    viewers = int(os.environ["BULK_VIEWERS"])
    results: dict = {"bulk_creators": creators, "bulk_gifts": gifts}
    notes: list[str] = []

    with connection.cursor() as cursor:
        cursor.execute("SHOW fsync")
        fsync = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        sync = cursor.fetchone()[0]
        cursor.execute("SHOW full_page_writes")
        fpw = cursor.fetchone()[0]
    started = time.perf_counter()
    seed(creators=creators, gifts=gifts, viewers=viewers)
    results["bulk_seed_s"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    before = ledger_failures()
    verify_s = time.perf_counter() - started
    log(f"verify_ledger before: {verify_s:.1f} s, {len(before)} failing checks")

    now = timezone.now()
    started = time.perf_counter()
    released = earnings_release(now=now)
    results["release_earnings_2m_s"] = round(time.perf_counter() - started, 2)
    moved = sum(r.diamonds for r in released)
    log(f"release: {results['release_earnings_2m_s']} s, {moved} diamonds")
    started = time.perf_counter()
    again = earnings_release(now=now)
    results["release_rerun_s"] = round(time.perf_counter() - started, 2)

    queued = {"tasks": 0, "payouts": 0}
    original = tasks.payout_send_many_task.delay
    real_broker = settings.CELERY_BROKER_URL.startswith("redis")

    def counted(ids, *args, **kwargs):
        queued["tasks"] += 1
        queued["payouts"] += len(ids)
        return original(ids, *args, **kwargs) if real_broker else None

    tasks.payout_send_many_task.delay = counted
    try:
        started = time.perf_counter()
        batch = payout_batch_run()
        results["payout_batch_100k_s"] = round(time.perf_counter() - started, 2)
        log(f"batch: {results['payout_batch_100k_s']} s, {len(batch.created)} payouts")
        started = time.perf_counter()
        rerun = payout_batch_run()
        results["payout_batch_rerun_s"] = round(time.perf_counter() - started, 2)
    finally:
        tasks.payout_send_many_task.delay = original
    lines = PayoutStatementLine.objects.count()
    results["payout_statement_lines"] = lines

    started = time.perf_counter()
    after = ledger_failures()
    results["bulk_ledger_ok"] = int(not before and not after)
    log(f"verify_ledger after: {time.perf_counter() - started:.1f} s, {len(after)} failing")

    expected_payouts = creators
    if len(batch.created) != expected_payouts or rerun.created or moved <= 0:
        raise RuntimeError(
            f"bulk: {len(batch.created)} payouts of {expected_payouts} expected "
            f"({batch.summary}); rerun created {len(rerun.created)}; released {moved}"
        )
    notes += [
        f"bulk section on a durable PostgreSQL (fsync={fsync}, synchronous_commit={sync}, "
        f"full_page_writes={fpw}; its own server, see bench/bulk.py): {creators:,} creators, "
        f"{gifts:,} gifts from {viewers:,} viewers (each gift a journal row, 4 entries, a gift "
        f"event), a clawback for 1 creator in 50; seeded in SQL in {results['bulk_seed_s']} s; "
        f"verify_ledger {'passed' if not before else 'FAILED ' + str(before)} before "
        f"({verify_s:.0f} s) and {'passed' if not after else 'FAILED ' + str(after)} after",
        f"release_earnings over {len(released):,} creators: {moved:,} diamonds from "
        f"{gifts:,} matured gift entries in {results['release_earnings_2m_s']} s "
        f"({settings.EARNINGS_RELEASE_CHUNK:,} creators per transaction); the rerun with "
        f"nothing to do {results['release_rerun_s']} s ({sum(r.diamonds for r in again)} moved)",
        f"payout batch over {len(batch.created):,} creators: {results['payout_batch_100k_s']} s "
        f"({results['payout_batch_100k_s'] / max(1, len(batch.created)) * 1e4:.1f} s per 10k "
        f"creators; {settings.PAYOUT_BATCH_CHUNK:,} per transaction), {lines:,} FIFO statement "
        f"lines, {queued['payouts']:,} sends queued as {queued['tasks']:,} Celery tasks "
        f"({'Redis' if real_broker else 'stub: no Redis broker'}); the rerun with nothing to "
        f"do {results['payout_batch_rerun_s']} s",
    ]
    return {"results": results, "notes": notes}


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.update(DEBUG="0", APPLAUSE_TESTING="0", LOG_LEVEL="WARNING")
    os.environ.setdefault("SECRET_KEY", "bench-bulk-" + "x" * 40)
    redis_url = os.environ.get("REDIS_URL", "")
    os.environ["CELERY_BROKER_URL"] = (
        redis_url.rsplit("/", 1)[0] + "/14" if redis_url.startswith("redis://") else "memory://"
    )
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    log(f"migrated in {time.perf_counter() - started:.1f} s")
    try:
        payload = measure()
    finally:
        if redis_url.startswith("redis://"):
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
    print("BULK_JSON " + json.dumps(payload), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
