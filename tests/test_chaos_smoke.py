"""``bench/chaos.py`` in its quick version (CHAOS_QUICK=1) inside ``make test``: the bank test
with web and worker SIGKILLs, a crash of a durable PostgreSQL (then crash recovery) and a
Redis outage (on private instances, so the rest of the suite is not disturbed), the webhook
shuffle, and the final accounting, including every acknowledged answer found in the ledger."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_chaos_quick_run_loses_nothing():
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("the chaos run needs PostgreSQL, Redis and localstripe (make test)")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTEST_XDIST_WORKER", "DEBUG"}}
    env.update(CHAOS_QUICK="1", CHAOS_PRIVATE_SERVICES="1", APPLAUSE_TESTING="0")
    result = subprocess.run(
        [sys.executable, "bench/chaos.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout[-4000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("CHAOS "), output
    values = {k: int(v) for k, v in (pair.split("=", 1) for pair in last.split()[1:])}
    assert values["discrepancies"] == 0, output
    assert values["faults"] > 0, output
    assert values["web_kills"] >= 1, output
    assert values["worker_kills"] >= 1, output
    assert values["pg_crashes"] >= 1, output
    assert values["redis_outages"] >= 1, output
    assert values["acked"] > 0, output
    assert values["acked_missing"] == 0, output
    # Enough traffic that the faults met requests: ~2/s of the 60 s bank test even on a
    # loaded 2-core machine (a quiet one tries 200-400; a throughput floor would be a timing test).
    assert values["ops_tried"] >= 60, output
    assert values["ops_succeeded"] > 0, output
    assert result.returncode == 0, output
