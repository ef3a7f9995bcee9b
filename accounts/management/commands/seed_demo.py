from importlib import import_module

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Create the demo data (idempotent): every local app's ``demo.seed``, in app order."

    def handle(self, *args, **options):
        lines: list[str] = []
        for app in settings.LOCAL_APPS:
            try:
                module = import_module(f"{app}.demo")
            except ModuleNotFoundError as exc:
                if exc.name != f"{app}.demo":
                    raise
                continue
            with transaction.atomic():
                module.seed(lines)
        (settings.VAR_DIR / "demo_logins.txt").write_text("\n".join(lines) + "\n")
        self.stdout.write("seed_demo: " + "; ".join(lines))
