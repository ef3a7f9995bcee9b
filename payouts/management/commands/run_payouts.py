from typing import Any

from django.core.management.base import BaseCommand

from payouts.services import payout_batch_run


class Command(BaseCommand):
    help = "Run one payout batch now (what the weekly beat task does)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(payout_batch_run().summary)
