from typing import Any

from django.core.management.base import BaseCommand

from creators.services import earnings_release


class Command(BaseCommand):
    help = "Move pending diamonds older than EARNINGS_HOLD_DAYS to available (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        results = earnings_release()
        released = [r for r in results if r.diamonds]
        total = sum(r.diamonds for r in released)
        self.stdout.write(
            f"release_earnings: {total} diamonds released to {len(released)} creators "
            f"({len(results)} checked)"
        )
