"""A process that runs the app's bulk reads on command (``tests/test_pooled_cursors.py``),
with ``DATABASE_URL`` pointing at a PgBouncer in transaction pooling: one command per line
on stdin, one JSON answer per line on stdout, ``{"ok": …}`` or ``{"error": "Class: …"}``.

    batch                  the Celery payout_batch_task (eager): its summary
    batch_one_by_one       payout_batch_run(set_based=False) (statement_allocate per payout)
    export USER ID,ID,…    the admin's manual-rail bank CSV export of those payouts, signed in
                           as USER: the CSV's rows
    rollup                 hot_accounts_rollup(): accounts rolled up
    reconcile              payments_reconcile() over the last 5 minutes: its status
    tracker CREATOR LIVE UPTO   tracker_at(): the open combos
    tier TIER ACTOR COINS  tier_update(coins_per_month=COINS) as ACTOR: "updated"
    iterate                a plain QuerySet.iterator() over the payouts: how many
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    import django

    django.setup()
    from datetime import timedelta

    from accounts.models import User
    from config.celery import app as celery_app
    from gifts.combos import tracker_at
    from memberships.models import Tier
    from memberships.services import tier_update
    from payouts.models import Payout
    from payouts.services import payout_batch_run
    from payouts.tasks import payout_batch_task
    from staff.tests.factories import verified_client
    from wallets.services import hot_accounts_rollup, payments_reconcile

    celery_app.conf.task_always_eager = True  # the sends run here too, through PgBouncer
    # Pages of two or three rows: a few rows then take several queries each.
    import gifts.combos
    import memberships.services.tiers
    import payouts.admin
    import payouts.statements.allocation
    import wallets.services.ledger

    payouts.admin.EXPORT_PAGE = 2
    payouts.statements.allocation.ALLOCATE_PAGE = 2
    wallets.services.ledger.ROLLUP_PAGE = 3
    gifts.combos.CHAIN_PAGE = 2
    memberships.services.tiers.NOTICE_PAGE = 2

    def export(user_id: str, ids: str) -> list[list[str]]:
        client = verified_client(User.objects.get(pk=user_id))
        response = client.post(
            "/admin/payouts/payout/",
            {"action": "export_csv_action", "_selected_action": ids.split(",")},
        )
        assert response.status_code == 200, response.status_code
        text = b"".join(response.streaming_content).decode()
        return list(csv.reader(io.StringIO(text)))

    def tracker(creator_id: str, live_id: str, upto_id: str) -> list[list[int]]:
        found = tracker_at(creator_id=int(creator_id), live_id=live_id, upto_id=int(upto_id))
        return sorted([c.combo_id, c.count, c.hits, c.coins] for c in found.open.values())

    def tier(tier_id: str, actor_id: str, coins: str) -> str:
        tier_update(
            tier=Tier.objects.get(pk=tier_id),
            actor=User.objects.get(pk=actor_id),
            coins_per_month=int(coins),
        )
        return "updated"

    commands = {
        "batch": lambda: payout_batch_task.delay().get(),
        "batch_one_by_one": lambda: payout_batch_run(set_based=False).summary,
        "export": export,
        "rollup": hot_accounts_rollup,
        "reconcile": lambda: payments_reconcile(window=timedelta(minutes=5)).status,
        "tracker": tracker,
        "tier": tier,
        "iterate": lambda: sum(1 for _ in Payout.objects.values_list("pk").iterator(1)),
    }
    print(json.dumps({"ok": "ready"}), flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        try:
            answer = {"ok": commands[command](*args)}
        except Exception as exc:  # the answer the test asserts on
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
