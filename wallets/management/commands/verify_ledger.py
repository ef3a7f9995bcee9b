import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from wallets.ledger_checks import run_checks_timed


class Command(BaseCommand):
    help = (
        "Check the ledger's invariants (each with the seconds it took); exit status 0 only "
        "when all hold."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        results = run_checks_timed()
        failed = [name for name, problems, _seconds in results if problems]
        for name, problems, seconds in results:
            mark = "FAIL" if problems else "ok"
            self.stdout.write(f"  [{mark}] {name} ({seconds:.2f} s)")
            for problem in problems:
                self.stdout.write(f"      - {problem}")
        elapsed = time.perf_counter() - started
        if failed:
            raise CommandError(
                f"verify_ledger: {len(failed)} of {len(results)} checks failed ({elapsed:.1f} s)"
            )
        self.stdout.write(f"verify_ledger: all {len(results)} checks passed ({elapsed:.1f} s)")
