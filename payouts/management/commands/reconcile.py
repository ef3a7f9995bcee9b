from django.core.management.base import BaseCommand

from payouts.reconcile import reconcile_all


class Command(BaseCommand):
    help = "Reconcile payments with Stripe and payouts with the payout rail, once, now."

    def handle(self, *args, **options):
        self.stdout.write(reconcile_all())
