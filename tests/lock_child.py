"""A process that takes the app's locks on command (``tests/test_locks_through_pgbouncer.py``):
one command per line on stdin, one answer per line on stdout.

    hold NAME WAIT      session_lock(NAME, wait=WAIT): "held" or "refused" (kept until release)
    recharge ID WAIT    a recharge's Stripe-call lock: "held" or "refused" (kept until release)
    release             leave every lock held so far: "released"
    batch               payout_batch_run(): "ran" or "skipped"
    reconcile_payouts   payouts_reconcile(): "ran" or "skipped"
    reconcile_payments  payments_reconcile(): its run's status ("skipped" when locked out)
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    import django

    django.setup()
    from datetime import timedelta

    from payouts.services import payout_batch_run, payouts_reconcile
    from wallets.services import payments_reconcile
    from wallets.services.locks import session_lock
    from wallets.services.stripe_calls import _recharge_lock

    held = ExitStack()
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "hold":
            got = held.enter_context(session_lock(args[0], wait=float(args[1])))
            answer = "held" if got else "refused"
        elif command == "recharge":
            got = held.enter_context(_recharge_lock(int(args[0]), wait=float(args[1])))
            answer = "held" if got else "refused"
        elif command == "release":
            held.close()
            held = ExitStack()
            answer = "released"
        elif command == "batch":
            answer = "skipped" if payout_batch_run().batch is None else "ran"
        elif command == "reconcile_payouts":
            answer = "skipped" if payouts_reconcile().run is None else "ran"
        elif command == "reconcile_payments":
            answer = payments_reconcile(window=timedelta(minutes=5)).status
        else:
            answer = f"unknown command {command}"
        print(answer, flush=True)


if __name__ == "__main__":
    main()
