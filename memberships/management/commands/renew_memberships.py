from django.core.management.base import BaseCommand

from memberships.services import memberships_renew


class Command(BaseCommand):
    help = "Renew every membership due now (what the Celery beat task runs); idempotent."

    def handle(self, *args, **options):
        self.stdout.write(memberships_renew().summary)
