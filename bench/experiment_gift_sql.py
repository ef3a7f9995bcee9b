"""Experiment for BENCHMARKS.md: what a gift costs when it is one SQL round trip.

Not part of ``make bench``. Run: ``scripts/with_services.sh .venv/bin/python
bench/experiment_gift_sql.py``. It measures, in one run on a scratch database, pgbench's
ceiling, the real ``gift_send`` (spread over 1,000 creators) and ``gift_one_statement`` below:
the same rows (journal, four entries, daily spend, gift event, tally, the wallet's conditional
debit) written by one data-modifying CTE, with the per-gift lookups (gift, creator, platform
accounts, wallet id) cached in the process. Then ``verify_ledger`` must still pass.

It is a sketch of fix 1 in BENCHMARKS.md, not a replacement: it skips the daily-limit and
frozen-wallet rules' error reporting and the spending-limits read.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench

GIFT_SQL = """
WITH tx AS (
    INSERT INTO wallets_ledgertransaction
        (kind, idempotency_key, actor_id, memo, reference, reverses_id, created_at)
    VALUES ('gift', %(key)s, %(sender)s, %(memo)s, %(ref)s, NULL, now())
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, created_at
), debit AS (
    UPDATE wallets_account SET balance = balance - %(coins)s
    WHERE id = %(wallet)s AND balance - %(coins)s >= 0 AND NOT is_frozen
      AND EXISTS (SELECT 1 FROM tx)
    RETURNING balance
), entries AS (
    INSERT INTO wallets_entry (transaction_id, account_id, amount, balance_after, created_at)
    SELECT tx.id, v.account_id, v.amount,
           CASE WHEN v.account_id = %(wallet)s THEN (SELECT balance FROM debit) END, tx.created_at
    FROM tx, (VALUES (%(wallet)s::bigint, -%(coins)s::bigint), (%(spent)s, %(coins)s),
                     (%(issuance)s, -%(diamonds)s), (%(pending)s, %(diamonds)s)) v(account_id, amount)
    WHERE EXISTS (SELECT 1 FROM debit)
), spend AS (
    INSERT INTO gifts_dailygiftspend (user_id, day, coins)
    SELECT %(sender)s, (tx.created_at AT TIME ZONE 'UTC')::date, %(coins)s FROM tx
    WHERE EXISTS (SELECT 1 FROM debit)
    ON CONFLICT (user_id, day) DO UPDATE SET coins = gifts_dailygiftspend.coins + excluded.coins
    WHERE gifts_dailygiftspend.coins + excluded.coins <= %(limit)s
    RETURNING coins
), event AS (
    INSERT INTO gifts_giftevent (sender_id, creator_id, gift_id, quantity, coins, diamonds,
                                 live_id, video_id, message, transaction_id, created_at)
    SELECT %(sender)s, %(creator)s, %(gift)s, 1, %(coins)s, %(diamonds)s, '', '', '', tx.id,
           tx.created_at
    FROM tx WHERE EXISTS (SELECT 1 FROM debit)
    RETURNING id
), tally AS (
    INSERT INTO gifts_gifttally (creator_id, sender_id, day, coins, diamonds, gifts)
    SELECT %(creator)s, %(sender)s, (tx.created_at AT TIME ZONE 'UTC')::date, %(coins)s,
           %(diamonds)s, 1
    FROM tx WHERE EXISTS (SELECT 1 FROM debit)
    ON CONFLICT (creator_id, day, sender_id) DO UPDATE SET
        coins = gifts_gifttally.coins + excluded.coins,
        diamonds = gifts_gifttally.diamonds + excluded.diamonds,
        gifts = gifts_gifttally.gifts + 1
)
SELECT (SELECT id FROM event), (SELECT balance FROM debit), (SELECT coins FROM spend)
"""

_cache: dict = {}


def gift_one_statement(*, sender, creator_handle, gift_slug, client_key, **_ignored):
    from django.conf import settings
    from django.db import connection, transaction

    from creators.models import Creator
    from gifts.models import Gift
    from wallets.models import Account, AccountKind
    from wallets.services import platform_account

    if "spent" not in _cache:
        _cache["spent"] = platform_account(AccountKind.COINS_SPENT).pk
        _cache["issuance"] = platform_account(AccountKind.DIAMOND_ISSUANCE).pk
    gift = _cache.get(("gift", gift_slug))
    if gift is None:
        gift = _cache[("gift", gift_slug)] = Gift.objects.values("id", "coins", "name").get(
            slug=gift_slug
        )
    creator = _cache.get(("creator", creator_handle))
    if creator is None:
        creator = _cache[("creator", creator_handle)] = Creator.objects.values(
            "id", "pending_account_id"
        ).get(handle=creator_handle)
    wallet = _cache.get(("wallet", sender.pk))
    if wallet is None:
        wallet = _cache[("wallet", sender.pk)] = Account.objects.values_list("id", flat=True).get(
            kind=AccountKind.WALLET, user_id=sender.pk
        )
    coins = gift["coins"]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            GIFT_SQL,
            {
                "key": f"gift:{sender.pk}:sql-{client_key}",
                "sender": sender.pk,
                "memo": f"1 x {gift['name']} to @{creator_handle}",
                "ref": f"creator:{creator['id']}",
                "coins": coins,
                "diamonds": coins,
                "wallet": wallet,
                "spent": _cache["spent"],
                "issuance": _cache["issuance"],
                "pending": creator["pending_account_id"],
                "creator": creator["id"],
                "gift": gift["id"],
                "limit": settings.DAILY_GIFT_LIMIT,
            },
        )
        event_id, _balance, spent_today = cursor.fetchone()
        if event_id is None or spent_today is None:
            raise RuntimeError("refused (funds, limit or repeated key): roll back")
    return event_id


def main() -> int:
    base_url = os.environ["DATABASE_URL"]
    dbname = f"exp_{os.getpid()}"
    bench.admin_sql(base_url, f'CREATE DATABASE "{dbname}"')
    os.environ.update(
        DATABASE_URL=bench.url_with_db(base_url, dbname),
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY="experiment-" + uuid.uuid4().hex,
        APPLAUSE_TESTING="0",
        LOG_LEVEL="WARNING",
        CELERY_BROKER_URL="memory://",
    )
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        import django

        django.setup()
        from django.core.management import call_command

        import gifts.services

        call_command("migrate", verbosity=0)
        bench.bench_pgbench(os.environ["DATABASE_URL"], workdir)
        senders, handles = bench.seed_gift_world(16 * 8 + 2, 1000)
        pool = senders[: 16 * 8]
        rows = []
        for name in ("gift_send", "gift_one_statement"):
            if name == "gift_one_statement":
                gifts.services.gift_send = gift_one_statement  # the workers import it after fork
            load = os.getloadavg()[0]
            started = time.time()
            phase = bench.run_gift_phase(pool, handles, hot=False)
            rows.append(
                f"{name}: {phase['per_s']:.0f}/s, CPU per gift {phase['py_cpu_ms']:.2f} ms Python"
                f" + {phase['pg_cpu_ms']:.2f} ms PostgreSQL, p50 {phase['p50_ms']} ms, "
                f"{phase['errors']} errors {phase['samples']}, load {load:.1f}, "
                f"{time.time() - started:.0f} s"
            )
        call_command("verify_ledger")
        print(f"pgbench: {bench.results['db_ceiling_tx_per_s']}/s, CPU per tx {bench.CPU}")
        for row in rows:
            print(row)
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        bench.admin_sql(base_url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
