"""``make bench``'s renewals section (issue 18): ``renewals_100k_s``.

Seeds, in SQL, N members (100,000; 1,000 with ``BENCH_QUICK``) of N/100 creators' tiers, every
membership due now, each member's coins credited by a set-based adjustment (so
``verify_ledger`` passes); then times ``memberships.services.memberships_renew`` (set-based
chunks of ``MEMBERSHIP_RENEWAL_CHUNK``, ``MEMBERSHIP_RENEWAL_WORKERS`` at once) renewing all of them, and again with nothing due (``renewals_rerun_s``), and
checks the membership money (every renewal once, charges = ledger). ``BENCH_RENEWALS_N`` sets
N. ``renewals_cpu_ms_per_1k``: CPU time per 1,000 renewals of this process and of the whole
PostgreSQL server (its processes, read from /proc), which means something on a shared machine
where the wall clock does not.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

KEYS = ["renewals_100k_s", "renewals_rerun_s", "renewals_ok", "renewals_cpu_ms_per_1k"]
TARGETS = {"renewals_100k_s": ("<=", 60), "renewals_ok": (">=", 1)}

USER_COLUMNS = (
    "password, is_superuser, username, first_name, last_name, email, is_staff, is_active, "
    "date_joined, date_of_birth"
)
PRICE = 100


def seed(members: int, creators: int) -> None:
    from django.db import connection, transaction

    from wallets.models import AccountKind, TransactionKind
    from wallets.services import platform_account
    from wallets.services.bulk import BulkTransaction, ledger_post_bulk

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO accounts_user ({USER_COLUMNS})
            SELECT '!', false, 'renew-m-' || g, '', '', '', false, true, now(), '1990-01-01'
            FROM generate_series(1, %(members)s) g;
            INSERT INTO wallets_account (kind, unit, user_id, balance, is_hot, checkpoint_at,
                                         is_frozen, frozen_reason, created_at)
            SELECT 'wallet', 'COIN', id, 0, false, NULL, false, '', now()
            FROM accounts_user WHERE username LIKE 'renew-m-%%';
            INSERT INTO accounts_user ({USER_COLUMNS})
            SELECT '!', false, 'renew-c-' || g, '', '', '', false, true, now(), '1990-01-01'
            FROM generate_series(1, %(creators)s) g;
            INSERT INTO wallets_account (kind, unit, user_id, balance, is_hot, checkpoint_at,
                                         is_frozen, frozen_reason, created_at)
            SELECT 'diamonds_pending', 'DIAMOND', id, 0, true, NULL, false, '', now()
            FROM accounts_user WHERE username LIKE 'renew-c-%%';
            INSERT INTO creators_creator (user_id, handle, display_name, bio, is_active,
                                          created_at, pending_account_id, released_until)
            SELECT u.id, u.username, u.username, '', true, now(), a.id, NULL
            FROM accounts_user u JOIN wallets_account a
              ON a.user_id = u.id AND a.kind = 'diamonds_pending'
            WHERE u.username LIKE 'renew-c-%%';
            INSERT INTO memberships_tier (creator_id, position, name, coins_per_month, perks,
                                          price_effective_at, created_at, updated_at)
            SELECT c.id, 1, 'Fan club', %(price)s, '', NULL, now(), now()
            FROM creators_creator c WHERE c.handle LIKE 'renew-c-%%';
            CREATE TEMP TABLE rt AS
            SELECT row_number() OVER (ORDER BY t.id) - 1 AS n, t.id AS tier_id,
                   t.creator_id FROM memberships_tier t
            JOIN creators_creator c ON c.id = t.creator_id WHERE c.handle LIKE 'renew-c-%%';
            CREATE UNIQUE INDEX ON rt (n);
            INSERT INTO memberships_membership (member_id, creator_id, tier_id, next_tier_id,
                status, renews, coins_per_month, anchor, period_count, current_period_end,
                months, grace_until, next_attempt_at, cancelled_at, started_at, updated_at)
            SELECT u.id, rt.creator_id, rt.tier_id, NULL, 'active', true, %(price)s,
                   now() - interval '1 month 5 minutes', 1, now() - interval '5 minutes',
                   0, NULL, now() - interval '5 minutes', NULL, now(), now()
            FROM accounts_user u
            JOIN rt ON rt.n = split_part(u.username, '-', 3)::int %% %(creators)s
            WHERE u.username LIKE 'renew-m-%%';
            """,
            {"members": members, "creators": creators, "price": PRICE},
        )
        cursor.execute(
            "SELECT id FROM wallets_account WHERE kind = 'wallet' AND user_id IN "
            "(SELECT id FROM accounts_user WHERE username LIKE 'renew-m-%%') ORDER BY id"
        )
        wallet_ids = [row[0] for row in cursor.fetchall()]
    adjustments = platform_account(AccountKind.ADJUSTMENTS).pk
    for i in range(0, len(wallet_ids), 10_000):
        with transaction.atomic():
            ledger_post_bulk(
                kind=TransactionKind.ADJUSTMENT,
                transactions=[
                    BulkTransaction(
                        idempotency_key=f"bench-renew-fund:{wallet_id}",
                        legs=((wallet_id, 2 * PRICE), (adjustments, -2 * PRICE)),
                        memo="bench funds",
                    )
                    for wallet_id in wallet_ids[i : i + 10_000]
                ],
            )


def _ticks(pid: int) -> tuple[int, int, int]:
    """``(ppid, own cpu ticks, reaped children's cpu ticks)`` of ``pid`` from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def postgres_cpu_s() -> float | None:
    """CPU seconds used so far by the whole PostgreSQL server this process talks to (the
    postmaster's live children plus those that exited), if it runs on this machine."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            postmaster = _ticks(cursor.fetchone()[0])[0]
        _ppid, _own, total = _ticks(postmaster)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid, own, _children = _ticks(int(entry.name))
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == postmaster:
                    total += own
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class PhaseTimer:
    """Wall time spent in each phase of the set-based chunk (summed over the worker threads),
    by wrapping ``memberships.services.renewal_chunk``'s steps while the run is timed."""

    PHASES = ("due_lock", "who_can_pay", "post", "_record")

    def __init__(self) -> None:
        import threading

        from memberships.services import renewal_chunk, renewals

        self.module = renewal_chunk
        self.renewals = renewals
        self.spent = dict.fromkeys((*self.PHASES, "chunk"), 0.0)
        self.lock = threading.Lock()
        self.saved = {name: getattr(renewal_chunk, name) for name in self.PHASES}
        self.saved_chunk = renewals.renew_chunk

    def __enter__(self) -> PhaseTimer:
        wrapped = {**self.saved, "chunk": self.saved_chunk}
        for name, real in wrapped.items():

            def timed(*args, _real=real, _name=name, **kwargs):
                started = time.perf_counter()
                try:
                    return _real(*args, **kwargs)
                finally:
                    with self.lock:
                        self.spent[_name] += time.perf_counter() - started

            if name == "chunk":
                self.renewals.renew_chunk = timed
            else:
                setattr(self.module, name, timed)
        return self

    def __exit__(self, *exc) -> None:
        for name, real in self.saved.items():
            setattr(self.module, name, real)
        self.renewals.renew_chunk = self.saved_chunk

    def summary(self) -> str:
        total = self.spent["chunk"] or 1e-9
        rest = max(0.0, total - sum(self.spent[name] for name in self.PHASES))
        names = {
            "due_lock": "due rows locked and read",
            "who_can_pay": "wallets locked, who can pay",
            "post": "ledger statement",
            "_record": "memberships/charges/events statement + spending upsert",
        }
        return (
            ", ".join(
                f"{names[name]} {100 * self.spent[name] / total:.0f} %" for name in self.PHASES
            )
            + f", COMMIT and the rest {100 * rest / total:.0f} %"
        )


def run_section(results: dict, notes: list, *, quick: bool, log=print) -> None:
    from django.conf import settings
    from django.db import connection

    from memberships.ledger_checks import EXTRA_CHECKS
    from memberships.models import ChargeKind, MembershipCharge
    from memberships.services import memberships_renew

    members = int(os.environ.get("BENCH_RENEWALS_N") or (1_000 if quick else 100_000))
    creators = max(1, members // 100)
    started = time.perf_counter()
    seed(members, creators)
    # As autovacuum would leave the seeded tables after a bulk load (only these: after the bulk
    # section the ledger tables hold millions of rows, and a full VACUUM would take minutes).
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM ANALYZE memberships_membership, memberships_tier, wallets_account, "
            "accounts_user, creators_creator, wallets_spendinglimits, gifts_dailygiftspend"
        )
    log(f"renewals: seeded {members:,} due memberships of {creators:,} creators in "
        f"{time.perf_counter() - started:.1f} s (and VACUUM ANALYZE)")  # fmt: skip

    load_before = os.getloadavg()[0]
    pg_before, cpu_before = postgres_cpu_s(), time.process_time()
    started = time.perf_counter()
    with PhaseTimer() as phases:
        run = memberships_renew()
    results["renewals_100k_s"] = round(time.perf_counter() - started, 2)
    cpu = time.process_time() - cpu_before
    pg_after = postgres_cpu_s()
    pg = None if pg_before is None or pg_after is None else pg_after - pg_before
    load_after = os.getloadavg()[0]
    per_1k = 1000 / max(members, 1)
    results["renewals_cpu_ms_per_1k"] = round((cpu + (pg or 0)) * per_1k * 1000)
    cpu_note = (
        f"CPU per 1,000 renewals: {cpu * per_1k * 1000:,.0f} ms Python + "
        + (f"{pg * per_1k * 1000:,.0f} ms PostgreSQL" if pg is not None else "PostgreSQL unknown")
        + f"; load average {load_before:.1f} before, {load_after:.1f} after"
    )
    log(f"renewals: {run.summary} in {results['renewals_100k_s']} s; {cpu_note}")
    log(f"renewals: time in each phase of a chunk: {phases.summary()}")
    started = time.perf_counter()
    rerun = memberships_renew()
    results["renewals_rerun_s"] = round(time.perf_counter() - started, 2)

    charges = MembershipCharge.objects.filter(
        kind=ChargeKind.RENEWAL, membership__member__username__startswith="renew-m-"
    ).count()
    problems = [p for _name, check in EXTRA_CHECKS for p in check()]
    ok = run.renewed == members and rerun.renewed == 0 and charges == members and not problems
    results["renewals_ok"] = int(ok)
    notes.append(
        f"renewals: {run.renewed:,} of {members:,} due memberships renewed in "
        f"{results['renewals_100k_s']} s ({members / max(results['renewals_100k_s'], 1e-9):,.0f}"
        f"/s, chunks of {settings.MEMBERSHIP_RENEWAL_CHUNK:,}, "
        f"{settings.MEMBERSHIP_RENEWAL_WORKERS} at once, set-based); rerun {results['renewals_rerun_s']} s renewed "
        f"{rerun.renewed}; membership ledger checks: {problems[:3] or 'pass'}; {cpu_note}; "
        f"time in each phase of a chunk: {phases.summary()}"
    )
