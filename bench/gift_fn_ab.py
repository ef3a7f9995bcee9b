"""A/B of the PostgreSQL work one gift costs (issue #15): two schemas and functions, measured
on one server, interleaved, one connection each, so that other work on the machine weighs on
both alike.

Per call of the gift function (the HTTP form: with an Idempotency-Key, so the idempotency row
is written too) it reports the backend's own CPU (``/proc/<pid>/stat`` of that one backend: no
other client, no background process), the WAL it wrote (``pg_current_wal_insert_lsn``: every
row and index entry is WAL, so this is the load-independent size of the work) and the wall
time (each call a durable commit, one at a time).

Usage, inside one ``APPLAUSE_PG_DURABLE=1 scripts/with_services.sh bash -c '...'``::

    # in each tree (its own code migrates and seeds its database; this file copied there)
    .venv/bin/python bench/gift_fn_ab.py prepare ab_before > before.json
    .venv/bin/python bench/gift_fn_ab.py prepare ab_after > after.json
    # then from either tree
    .venv/bin/python bench/gift_fn_ab.py compare 6 1000 before.json after.json \\
        [after.json:gift_send_v3 ...]

A ``FILE:FUNCTION`` argument calls another function version in that file's database.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def prepare(name: str) -> int:
    """Create database ``name`` beside ``DATABASE_URL``, migrate and seed it with this tree's
    code, and print what ``compare`` needs as JSON."""
    base_url = os.environ["DATABASE_URL"]
    sys.path.append(str(REPO / "bench"))
    import run as b  # bench/run.py: database helpers and seeding

    b.admin_sql(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    b.admin_sql(base_url, f'CREATE DATABASE "{name}"')
    url = b.url_with_db(base_url, name)
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        APPLAUSE_TESTING="0",
        LOG_LEVEL="WARNING",
        CACHE_KEY_PREFIX=f"{name}{os.getpid()}",
        CELERY_BROKER_URL="memory://",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from gifts.services.one_statement import GIFT_SEND_FUNCTION

    call_command("migrate", verbosity=0)
    senders, handles = b.seed_gift_world(32, 200)
    ids = sorted(u.pk for u in senders)
    print(
        json.dumps(
            dict(
                url=url,
                function=GIFT_SEND_FUNCTION,
                senders=ids,
                handles=handles,
                slug=b.GIFT_SLUG,
                daily_limit=settings.DAILY_GIFT_LIMIT,
                tree=str(REPO),
            )
        )
    )
    return 0


def _backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Side:
    def __init__(self, spec: str):
        import psycopg

        path, _, function = spec.partition(":")
        self.world = json.loads(Path(path).read_text().strip().splitlines()[-1])
        self.function = function or self.world["function"]
        self.label = f"{Path(path).stem}:{self.function}"
        self.conn = psycopg.connect(self.world["url"].replace("postgres://", "postgresql://"))
        self.conn.autocommit = True
        self.pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.rng = random.Random(self.label)
        self.sql = (
            f"SELECT {self.function}(%s, %s, %s, %s, 1, '', '', '', NULL, now(), 18, %s, 1, 1, "
            "%s, %s, '/api/v1/gifts/send/', NULL)"
        )
        self.rounds: list[dict] = []

    def call(self) -> None:
        sender = self.rng.choice(self.world["senders"])
        key = uuid.uuid4().hex
        answer = self.conn.execute(
            self.sql,
            (
                sender,
                f"gift:{sender}:ab-{key}",
                self.rng.choice(self.world["handles"]),
                self.world["slug"],
                self.world["daily_limit"],
                key,
                "0" * 64,
            ),
        ).fetchone()[0]
        if answer.get("result") != "created":
            raise RuntimeError(f"{self.label}: {answer}")

    def lsn(self) -> int:
        return int(self.conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])

    def measure(self, calls: int) -> dict:
        load = os.getloadavg()[0]
        lsn0, cpu0, wall0 = self.lsn(), _backend_cpu_s(self.pid), time.perf_counter()
        for _ in range(calls):
            self.call()
        wall, cpu = time.perf_counter() - wall0, _backend_cpu_s(self.pid) - cpu0
        wal = self.lsn() - lsn0
        row = dict(
            cpu_ms=cpu / calls * 1000,
            wal_bytes=wal / calls,
            wall_ms=wall / calls * 1000,
            load=load,
        )
        self.rounds.append(row)
        return row


def compare(rounds: int, calls: int, specs: list[str]) -> int:
    sides = [Side(spec) for spec in specs]
    for side in sides:  # plans cached, pages in memory
        for _ in range(200):
            side.call()
    sides[0].conn.execute("CHECKPOINT")  # full-page images alike for every side from here
    for r in range(rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            row = side.measure(calls)
            print(
                f"round {r + 1} {side.label}: backend CPU {row['cpu_ms']:.3f} ms/gift, WAL "
                f"{row['wal_bytes']:.0f} bytes/gift, wall {row['wall_ms']:.2f} ms/gift, load "
                f"{row['load']:.1f}",
                flush=True,
            )
    print()
    for side in sides:
        cpu = [x["cpu_ms"] for x in side.rounds]
        wal = [x["wal_bytes"] for x in side.rounds]
        wall = [x["wall_ms"] for x in side.rounds]
        print(
            f"{side.label} ({side.world['tree']}): median of {rounds} rounds x {calls} gifts: "
            f"backend CPU {statistics.median(cpu):.3f} ms/gift (range {min(cpu):.3f}-"
            f"{max(cpu):.3f}), WAL {statistics.median(wal):.0f} bytes/gift, wall "
            f"{statistics.median(wall):.2f} ms/gift"
        )
    return 0


def main() -> int:
    if sys.argv[1:2] == ["prepare"]:
        return prepare(sys.argv[2])
    if sys.argv[1:2] == ["compare"]:
        return compare(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
