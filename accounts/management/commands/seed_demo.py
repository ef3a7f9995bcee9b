from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import import_string


class Command(BaseCommand):
    help = "Create the demo data (idempotent)."

    def handle(self, *args, **options):
        lines: list[str] = []
        for path in settings.DEMO_SEEDERS:
            with transaction.atomic():
                import_string(path)(lines)
        logins = settings.VAR_DIR / "demo_logins.txt"
        logins.write_text("\n".join(lines) + "\n")
        self.stdout.write(f"seed_demo: {len(settings.DEMO_SEEDERS)} seeders ran; " + "; ".join(lines))
