"""``bench/run.py`` in its tiny smoke version (BENCH_QUICK=1): it runs end to end and its last
line carries every key. No timing is asserted: numbers belong to ``make bench``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

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
    "two_servers_gifts_per_s",
    "two_servers_totals_ok",
    "granian_http_gifts_per_s",
    "granian_http_p99_ms",
    "granian_http_errors",
    "pgbouncer_http_gifts_per_s",
    "pgbouncer_http_p99_ms",
    "pgbouncer_http_errors",
    "one_sender_8conn_gifts_per_s",
    "one_sender_double_spend",
    "payout_batch_100k_s",
    "reconcile_10k_s",
    "reconcile_rerun_10k_s",
    "reconcile_stripe_s",
    # bench/bulk.py (issue 16)
    "bulk_creators",
    "bulk_gifts",
    "bulk_seed_s",
    "release_earnings_2m_s",
    "release_rerun_s",
    "payout_batch_rerun_s",
    "payout_statement_lines",
    "bulk_ledger_ok",
    # bench/renewals.py (issue 18)
    "renewals_100k_s",
    "renewals_rerun_s",
    "renewals_ok",
    "renewals_cpu_ms_per_1k",
]


@pytest.mark.slow
def test_bench_quick_prints_every_key():
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        pytest.skip("the benchmark needs PostgreSQL (make test provides it)")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTEST_XDIST_WORKER", "DEBUG"}}
    env.update(BENCH_QUICK="1", APPLAUSE_TESTING="0")
    env.pop("BENCH_WRITE", None)
    result = subprocess.run(
        [sys.executable, "bench/run.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT "), result.stdout[-3000:]
    values = dict(pair.split("=", 1) for pair in last.split()[1:])
    assert sorted(values) == sorted(KEYS), last
    # The ledger must hold after the benchmark's concurrent gifts, payouts and reconciliation.
    assert values["ledger_ok"] == "1", result.stdout[-3000:]
    assert values["bulk_ledger_ok"] == "1", result.stdout[-3000:]
    # Two servers at once and one sender from 8 connections: nothing lost, nothing spent twice.
    assert values["two_servers_totals_ok"] == "1", result.stdout[-3000:]
    assert values["one_sender_double_spend"] == "0", result.stdout[-3000:]
