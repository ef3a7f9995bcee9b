from typing import Any

from django.core.management.base import BaseCommand, CommandError

from wallets.ledger_checks import run_checks


class Command(BaseCommand):
    help = "Check the ledger's invariants; exit status 0 only when all hold."

    def handle(self, *args: Any, **options: Any) -> None:
        results = run_checks()
        failed = [(name, problems) for name, problems in results if problems]
        for name, problems in results:
            mark = "FAIL" if problems else "ok"
            self.stdout.write(f"  [{mark}] {name}")
            for problem in problems:
                self.stdout.write(f"      - {problem}")
        if failed:
            raise CommandError(f"verify_ledger: {len(failed)} of {len(results)} checks failed")
        self.stdout.write(f"verify_ledger: all {len(results)} checks passed")
