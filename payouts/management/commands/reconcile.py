from typing import Any

from django.core.management.base import BaseCommand, CommandError

from payouts.reconcile import reconcile_all_checked


class Command(BaseCommand):
    help = (
        "Reconcile payments with Stripe and payouts with the payout rail, once, now. "
        "Exits non-zero when any part failed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        summary, failed = reconcile_all_checked()
        self.stdout.write(summary)
        if failed:
            raise CommandError("reconcile: part of the run FAILED (above); see the log")
